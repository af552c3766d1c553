"""The SeeMe SDK's round trip against `manage.py serve --no-demo` as shipped (gunicorn and a real worker), on a
fresh data directory: what a script written for SeeMe.ai waits for when it points at Sightline.

The real `seeme==0.13.7` client registers, makes a dataset with the default splits and ten labels, uploads
scikit-learn's digits at 64x64 (every fifth in valid), asks for a training request with the server's defaults,
polls the list as the SDK can until it reads finished, predicts the next 50 digits, which it never saw (the first
call loads the model), downloads the labels, onnx and pkl files and exports the version. Prints one row per step:
seconds, and what it gave.
Run: .venv/bin/python bench/sdk.py [--images 300] [--size 64]
"""

import argparse
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import free_port, machine, percentile, table  # noqa: E402
from load import serve_start, serve_stop, serve_wait  # noqa: E402

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PASSWORD = "Bench-correct-horse-battery"
HELD_OUT = 50  # digits after the training ones, predicted one by one


def digits(folder: Path, count: int, size: int) -> list[tuple[Path, int]]:
    """The first `count` digits as size x size PNGs, with their class."""
    from sklearn.datasets import load_digits

    data = load_digits()
    out = []
    for n in range(count):
        pixels = (data.images[n] * (255 / 16)).astype(np.uint8)
        path = folder / f"d{n}.png"
        PILImage.fromarray(pixels).resize((size, size), PILImage.Resampling.NEAREST).convert("RGB").save(path)
        out.append((path, int(data.target[n])))
    return out


def run(base: str, work: Path, images: int, size: int) -> list[list]:
    from seeme import Client

    rows = []

    def step(name: str, start: float, detail: str) -> None:
        rows.append([name, f"{time.perf_counter() - start:.1f}", detail])

    client = Client(backend=f"{base}/api/v1/")
    name = f"bench-{secrets.token_hex(3)}"
    client.register(name, f"{name}@example.com", PASSWORD, "Bench", "Mark")
    client.login(name, PASSWORD)
    start = time.perf_counter()
    dataset = client.create_dataset({"name": "Digits", "multi_label": False, "default_splits": True})
    d, v = dataset["id"], dataset["versions"][0]["id"]
    splits = {split["name"]: split for split in dataset["versions"][0]["splits"]}
    labels = [client.create_dataset_label(d, v, {"name": label}) for label in NAMES]
    made = digits(work, images, size)
    for n, (path, target) in enumerate(made):
        split = splits["valid" if n % 5 == 4 else "train"]
        item = {"name": path.stem, "extension": "png", "splits": [split], "annotations": []}
        item["annotations"].append({"label_id": labels[target]["id"], "coordinates": ""})
        created = client.create_dataset_item(d, v, item)
        client.upload_dataset_item_image(d, v, created["id"], str(work), path.name)
    step("dataset: create, labels, items, images", start, f"{images} digits at {size} px")

    start = time.perf_counter()
    client.create_training_request(client.get_dataset_version(d, v))
    while True:
        [request] = client.get_training_requests()
        if request["finished"]:
            break
        time.sleep(1)
    if request["status"] != "finished":
        raise RuntimeError(f"training request {request['status']}: {request['error']}")
    step("training request, polled until finished", start, f"model {request['model_id']}")

    model = client.get_model(request["model_id"])
    held_out = digits(work, images + HELD_OUT, size)[images:]  # digits the model never saw
    start = time.perf_counter()
    first = client.predict(model["id"], str(held_out[0][0]))
    step("predict, first call (loads the model)", start, f"{first['prediction']} at {first['confidence']:.3f}")
    times, right = [], 0
    for path, target in held_out:
        start = time.perf_counter()
        answer = client.predict(model["id"], str(path))
        times.append(time.perf_counter() - start)
        right += answer["prediction"] == NAMES[target]
    rows.append([f"predict, p50 of {HELD_OUT}", f"{percentile(times, 50):.2f}", f"{right}/{HELD_OUT} right"])

    os.chdir(work)  # the SDK saves downloads in the working folder
    for asset in ("labels", "onnx", "pkl"):
        start = time.perf_counter()
        client.download_active_model(model, asset_type=asset)
        saved = work / f"{model['active_version_id']}.{'txt' if asset == 'labels' else asset}"
        step(f"download {asset}", start, f"{saved.stat().st_size / 1e6:.2f} MB")

    start = time.perf_counter()
    client.download_dataset(d, v, extract_to_dir=str(work / "export"))
    exported = sum(1 for _ in (work / "export").rglob("*.png"))
    step("export the version", start, f"{exported} images")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    data_dir = ROOT / ".data" / f"bench-seeme-{secrets.token_hex(4)}"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log, serve = tempfile.TemporaryFile(), None
    try:
        with tempfile.TemporaryDirectory() as work:
            start = time.perf_counter()
            serve = serve_start(data_dir, port, log)
            serve_wait(serve, base)
            rows = [["serve: start, migrate a fresh database", f"{time.perf_counter() - start:.1f}", ""]]
            rows += run(base, Path(work), args.images, args.size)
            os.chdir(ROOT)
    except BaseException:
        log.seek(0)
        print(f"serve's output:\n{log.read().decode(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    finally:
        if serve is not None:
            serve_stop(serve, data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"machine: {machine()}")
    print(table(["step", "seconds", "gave"], rows))


if __name__ == "__main__":
    main()
