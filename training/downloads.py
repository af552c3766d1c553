"""Download a model's predictions on its training and validation images (spec 000, Training question 7).

A ZIP of the resized images (the stored 256 px thumbnails), `predictions.csv` with the ground truth,
the predicted labels and every label's score, and the same as `predictions.json`.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

from projects.files import stored_bytes
from projects.models import Image
from training import statistics
from training.models import ModelVersion, Split


def predictions_zip(*, model: ModelVersion, checkpoint: str) -> bytes:
    rows = []
    for split in Split.values:
        for row in statistics.model_predictions(model=model, checkpoint=checkpoint, split=split, advanced=True):
            rows.append({"split": split, **row})
    thumbnails = dict(
        Image.objects.filter(pk__in=[r["image_id"] for r in rows if r["image_id"]]).values_list("id", "thumbnail")
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["image", "split", "ground_truth", "predicted", "correct", *model.labels])
        for row in rows:
            scores = {p["label"]: p["score"] for p in row["predictions"]}
            predicted = [p["label"] for p in row["predictions"] if p["positive"]]
            writer.writerow(
                [
                    row["image_name"],
                    row["split"],
                    ";".join(row["truth"]),
                    ";".join(predicted),
                    row["correct"],
                    *(f"{scores[label]:.6f}" for label in model.labels),
                ]
            )
            name = thumbnails.get(row["image_id"])
            try:
                thumbnail = stored_bytes(name) if name else None
            except OSError:  # deleted since: the row stays in the tables, without its picture
                thumbnail = None
            if thumbnail is not None:
                archive.writestr(f"images/{row['split']}/{row['item']}-{safe_name(row['image_name'])}.webp", thumbnail)
        archive.writestr("predictions.csv", table.getvalue())
        meta = {
            "model": model.name,
            "checkpoint": checkpoint,
            "labels": model.labels,
            "multi_label": model.multi_label,
            "thresholds": model.thresholds_for(checkpoint),
            "images": rows,
        }
        archive.writestr("predictions.json", json.dumps(meta, indent=1))
    return out.getvalue()


def safe_name(name: str) -> str:
    """A file name with no folders or odd characters, for inside the ZIP."""
    base = name.rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:80]
