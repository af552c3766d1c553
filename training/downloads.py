"""Download a model's predictions on its training and validation images (spec 000, Training question 7).

A ZIP of the resized images (the stored 256 px thumbnails), `predictions.csv` with the ground truth,
the predicted labels and every label's score (a detector's: every true and predicted box), and the same
as `predictions.json` (an instance model's boxes there with their masks, as COCO RLE in the original's pixels).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

from projects.files import stored_bytes
from projects.models import Image
from training import statistics
from training.models import OBJECT_TASKS, ModelVersion, Split


def predictions_zip(*, model: ModelVersion, checkpoint: str) -> bytes:
    detection = model.task in OBJECT_TASKS  # an instance model's rows are its boxes, with masks in the JSON
    rows = []
    for split in Split.values:
        if detection:
            found = statistics.detection_predictions(model=model, checkpoint=checkpoint, split=split, masks=True)
        else:
            found = statistics.model_predictions(model=model, checkpoint=checkpoint, split=split, advanced=True)
        rows.extend({"split": split, **row} for row in found)
    table = io.StringIO()
    (_boxes_table if detection else _labels_table)(csv.writer(table), model, rows)
    meta = {
        "model": model.name,
        "checkpoint": checkpoint,
        "task": model.task,
        "labels": model.labels,
        "multi_label": model.multi_label,
        "thresholds": model.thresholds_for(checkpoint),
        **({"iou_threshold": model.iou_threshold} if detection else {}),
        "images": rows,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("predictions.csv", table.getvalue())
        _thumbnails(archive, rows)
        archive.writestr("predictions.json", json.dumps(meta, indent=1, default=float))
    return out.getvalue()


def _labels_table(writer, model: ModelVersion, rows: list[dict]) -> None:
    """A classifier's: a row per image with its true and predicted labels and every label's score."""
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


def _boxes_table(writer, model: ModelVersion, rows: list[dict]) -> None:
    """A detector's: a row per true box (found or not) and per predicted box at the thresholds and IoU in use (right
    or not), in original pixels."""
    writer.writerow(["image", "split", "box", "label", "x", "y", "width", "height", "score", "correct"])
    for row in rows:
        for kind, boxes, verdict in (("truth", row["truth"], "found"), ("predicted", row["boxes"], "correct")):
            for box in boxes:
                corners = [f"{box[k]:.2f}" for k in ("x", "y", "width", "height")]
                score = f"{box['score']:.6f}" if "score" in box else ""
                writer.writerow([row["image_name"], row["split"], kind, box["label"], *corners, score, box[verdict]])


def _thumbnails(archive: zipfile.ZipFile, rows: list[dict]) -> None:
    """Each row's image as its stored thumbnail, under images/<split>/; a deleted image is left out."""
    thumbnails = dict(
        Image.objects.filter(pk__in=[r["image_id"] for r in rows if r["image_id"]]).values_list("id", "thumbnail")
    )
    for row in rows:
        name = thumbnails.get(row["image_id"])
        try:
            thumbnail = stored_bytes(name) if name else None
        except OSError:  # deleted since: the row stays in the tables, without its picture
            thumbnail = None
        if thumbnail is not None:
            archive.writestr(f"images/{row['split']}/{row['item']}-{safe_name(row['image_name'])}.webp", thumbnail)


def safe_name(name: str) -> str:
    """A file name with no folders or odd characters, for inside the ZIP."""
    base = name.rsplit("/", 1)[-1]
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:80]
