"""Serve a Sightline model offline: POST an image to /api/predict/<project_id>/<model_name>/ and get its labels, a
detector's boxes (`?threshold=` and `?nms=` as on Sightline; with a segmentation head, its masks too), a segmentation
model's masks, or an instance segmentation model's objects (the same query as a detector's).

Needs only what requirements.txt names; sightline_images.py (and the other sightline_*.py files of the bundle,
Sightline's own last steps for its kind of model) must sit beside it. Run: python serve.py [--host 0.0.0.0] [--port 8500]
Send the image as the raw request body, or as the `file` field of a multipart form:
  curl --data-binary @image.jpg -H "Content-Type: application/octet-stream" localhost:8500/api/predict/1/my-model/
"""

import argparse
import json
import re
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import torch
from PIL import Image
from sightline_images import (  # Sightline's decoding, shipped beside this
    decode_rgb,
    upright_guide,
    upright_resized,
    upright_size,
)

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "model.json").read_text())
MODEL = torch.export.load(str(HERE / "model.pt2")).module()
DETECTION = META["task"] == "detection"
SEGMENTATION = META["task"] == "semantic-segmentation"
INSTANCES = META["task"] == "instance-segmentation"
HEADS = DETECTION and META.get("segmentation_head", False)  # a detector with a segmentation head: masks too
MASK_BRANCH = torch.export.load(str(HERE / "masks.pt2")).module() if INSTANCES else None
PATH = re.compile(r"^/api/predict/[^/]+/[^/]+/(best/?|last/?)?$")
MAX_BYTES = 100 * 1024 * 1024
Image.MAX_IMAGE_PIXELS = 120_000_000


def predict(data: bytes) -> list:
    """Labels with scores, best first; multi-label rows say whether each score reaches its threshold."""
    pixels = torch.from_numpy(decode_rgb(data, META["image_size"])).unsqueeze(0)
    with torch.inference_mode():
        scores = MODEL(pixels)[0].tolist()
    rows = []
    for index in sorted(range(len(scores)), key=lambda i: -scores[i]):
        row = {"label": META["labels"][index], "score": round(scores[index], 6)}
        if META["thresholds"] is not None:
            row["threshold"] = round(META["thresholds"][index], 6)
            row["positive"] = scores[index] >= META["thresholds"][index]
        rows.append(row)
    return rows


def predict_boxes(data: bytes, threshold: float | None, nms: float) -> tuple[list, list | None]:
    """A detector's boxes, best first, in the pixels of the image turned upright: Sightline's own selection; and,
    a detector with a segmentation head, its masks (as predict_masks'), else None."""
    from sightline_boxes import boxes_answer, boxes_select, network_input, rows_xywh

    pixels, scale = upright_resized(data, META["image_size"])
    thresholds = [threshold] * len(META["labels"]) if threshold is not None else META["thresholds"]
    with torch.inference_mode():
        level_boxes, level_scores, *semantic = MODEL(network_input([pixels], META["mean"], META["std"]))
    height, width = pixels.shape[:2]
    corners = boxes_select(
        [b[0] for b in level_boxes], [s[0] for s in level_scores], height, width, score=min(thresholds), nms=nms
    )
    boxes = boxes_answer(rows_xywh(corners, scale), META["labels"], thresholds)
    if not HEADS:
        return boxes, None
    from sightline_masks import masks_answer, segment

    original_width, original_height = upright_size(data)
    label_map, confidence = segment(semantic[0][:, :, :height, :width], original_height, original_width)
    return boxes, masks_answer(label_map, confidence, META["labels"])


def predict_masks(data: bytes) -> list:
    """A segmentation model's masks, one per label found, as COCO RLE in the pixels of the image turned upright."""
    from sightline_boxes import network_input
    from sightline_masks import masks_answer, segment

    pixels, _ = upright_resized(data, META["image_size"])
    width, height = upright_size(data)
    with torch.inference_mode():
        logits = MODEL(network_input([pixels], META["mean"], META["std"]))
    label_map, confidence = segment(logits[:, :, : pixels.shape[0], : pixels.shape[1]], height, width)
    return masks_answer(label_map, confidence, META["labels"])


def predict_instances(data: bytes, threshold: float | None, nms: float) -> list:
    """An instance segmentation model's objects, best first, in the pixels of the image turned upright: each one's
    label, score, box, mask (COCO RLE) and polygons, Sightline's own steps."""
    from sightline_boxes import network_input
    from sightline_geometry import polygonize
    from sightline_instances import instances_answer, instances_found

    pixels, scale = upright_resized(data, META["image_size"])
    width, height = upright_size(data)
    thresholds = [threshold] * len(META["labels"]) if threshold is not None else META["thresholds"]
    with torch.inference_mode():
        outputs = MODEL(network_input([pixels], META["mean"], META["std"]))
        [found] = instances_found(
            outputs,
            MASK_BRANCH,
            [pixels.shape[:2]],
            [scale],
            [(height, width)],
            score=min(thresholds),
            nms=nms,
            guides=[upright_guide(data, META["image_size"])],
        )
    return instances_answer(found, META["labels"], thresholds, polygonize)


class Refused(Exception):
    """A query Sightline would refuse: the reply names the field, as Sightline's does."""


def number(query: dict, name: str, default: float | None) -> float | None:
    """A query-string number from 0.01 to 1, as Sightline accepts it."""
    if not query.get(name, [""])[0]:
        return default
    try:
        value = float(query[name][0])
    except ValueError:
        value = 0.0
    if not 0.01 <= value <= 1:
        raise Refused({name: ["Give a number from 0.01 to 1."]})
    return value


def image_from_request(content_type: str, body: bytes) -> bytes:
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                return part.get_payload(decode=True)
        raise ValueError("Send the image in the `file` field.")
    return body


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        url = urlsplit(self.path)
        if not PATH.match(url.path):
            return self._reply(404, {"detail": "POST images to /api/predict/<project_id>/<model_name>/."})
        length = self.headers.get("Content-Length") or "0"
        length = int(length) if length.isdigit() else 0
        if not 0 < length <= MAX_BYTES:
            return self._reply(400, {"detail": f"Send an image of 1 byte to {MAX_BYTES // 1024**2} MiB."})
        try:
            query = parse_qs(url.query)
            boxes = DETECTION or INSTANCES
            settings = (number(query, "threshold", None), number(query, "nms", META.get("nms"))) if boxes else ()
        except Refused as refused:
            return self._reply(400, refused.args[0])
        try:
            data = image_from_request(self.headers.get("Content-Type", ""), self.rfile.read(length))
            masks = None
            if DETECTION:
                result, masks = predict_boxes(data, *settings)
            elif INSTANCES:
                result = predict_instances(data, *settings)
            else:
                result = predict_masks(data) if SEGMENTATION else predict(data)
        except (ValueError, OSError, EOFError, Image.DecompressionBombError) as exc:
            return self._reply(400, {"detail": f"Not an image this model can read: {exc}"})
        except Exception as exc:  # noqa: BLE001 - a reply, never a dropped connection
            return self._reply(500, {"detail": f"The model failed on this image: {type(exc).__name__}: {exc}"})
        answer = {"model": META["name"], "checkpoint": META["checkpoint"], "predictions": result}
        if masks is not None:
            answer["masks"] = masks
        self._reply(200, {**answer, "task": META["task"]} if DETECTION or SEGMENTATION or INSTANCES else answer)

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(
        f"Serving {META['name']} ({META['checkpoint']} checkpoint) on http://{args.host}:{server.server_port}/",
        flush=True,
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
