"""Serve a Sightline model offline: POST an image to /api/predict/<project_id>/<model_name>/ and get its labels.

Needs only torch, numpy and Pillow (requirements.txt); sightline_images.py must sit beside it. Run: python serve.py [--host 0.0.0.0] [--port 8500]
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

import torch
from PIL import Image
from sightline_images import decode_rgb  # the decoding Sightline trains and predicts with, shipped beside this file

HERE = Path(__file__).resolve().parent
META = json.loads((HERE / "model.json").read_text())
MODEL = torch.export.load(str(HERE / "model.pt2")).module()
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
        if not PATH.match(self.path):
            return self._reply(404, {"detail": "POST images to /api/predict/<project_id>/<model_name>/."})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BYTES:
            return self._reply(400, {"detail": f"Send an image of 1 byte to {MAX_BYTES // 1024**2} MiB."})
        try:
            data = image_from_request(self.headers.get("Content-Type", ""), self.rfile.read(length))
            result = predict(data)
        except (ValueError, OSError, Image.DecompressionBombError) as exc:
            return self._reply(400, {"detail": f"Not an image this model can read: {exc}"})
        self._reply(200, {"model": META["name"], "checkpoint": META["checkpoint"], "predictions": result})

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
