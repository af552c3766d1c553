"""Charts drawn from a run's history: every line its own colour."""

from training.charts import PALETTE, history_chart


def test_each_line_of_a_chart_has_its_own_colour_up_to_the_palettes_size():
    """An instance model's losses are six lines (total, classification, box regression, centreness, mask and
    semantic); with five colours the sixth took the first's."""
    names = [f"loss{n}" for n in range(len(PALETTE))]
    history = [{"epoch": epoch, **{name: 1.0 / (epoch + n) for n, name in enumerate(names)}} for epoch in (1, 2)]
    chart = history_chart(
        history, {name: name for name in names}, best_epoch=2, title="Training losses", y_label="loss", unit=False
    )
    colours = [series.color for series in chart.series]
    assert len(colours) == len(PALETTE) == 8 and len(set(colours)) == 8
