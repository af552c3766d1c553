"""Smart tool benchmark: GrabCut extract on a 512-pixel work area, SAM decode with a cached embedding, SAM's
image embedding (the first click without prefetching), and the click-to-mask round trip through the API.

SAM runs a vit_b built from segment-anything's classes with random weights: no checkpoint can be
downloaded here, and the time of every layer depends on its shapes, not on the values of its weights.
Point SIGHTLINE_SAM_CHECKPOINT at a real file to time that instead.

Run: .venv/bin/python bench/smart.py [--repeat 30]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import bench_database, machine, percentile, table


def ms(values: list[float]) -> tuple[str, str]:
    return f"{percentile(values, 50):.1f} ms", f"{percentile(values, 95):.1f} ms"


def grabcut_rows(repeat: int) -> list[list]:
    from annotations.assist.grabcut import grabcut_segment
    from annotations.assist.prompts import prompt_parse
    from tests.annotations.smart_scenes import SHAPES, iou, scene

    times, ious = [], []
    for index in range(repeat):
        s = scene(SHAPES[index % len(SHAPES)], index, width=1280, height=960, area_side=512)
        height, width = s.truth.shape
        prompt = prompt_parse(s.box, s.foreground, s.background, width=width, height=height)
        started = time.perf_counter()
        mask = grabcut_segment(s.rgb, prompt)
        times.append((time.perf_counter() - started) * 1000)
        ious.append(iou(mask, s.truth))
    quality = f"IoU mean {np.mean(ious):.4f}, min {min(ious):.4f}"
    return [
        ["GrabCut extract, 512 px work area (scaled to 512 with its margin), 2 iterations", repeat, *ms(times), quality]
    ]


def sam_rows(state: dict, repeat: int) -> list[list]:
    from annotations.assist.prompts import prompt_parse
    from annotations.assist.sam import SamEngine
    from tests.annotations.smart_scenes import scene

    onnx, eager = SamEngine(state), SamEngine(state, decoder="torch")  # the same weights, two decoders
    s = scene("star", 0, width=1024, height=768)
    started = time.perf_counter()
    features = onnx.embed(s.rgb).astype(np.float32)  # as the in-process cache keeps it
    embed_s = time.perf_counter() - started
    prompt = prompt_parse(s.box, s.foreground, s.background, width=1024, height=768)
    name = onnx.arch.name
    rows = [[f"SAM {name} image embedding (a first click with nothing cached)", 1, f"{embed_s:.2f} s", "", ""]]
    for engine, runtime in ((onnx, "ONNX Runtime (the CPU default)"), (eager, "eager torch")):
        engine.decode(features, prompt, (768, 1024))  # warm-up
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            engine.decode(features, prompt, (768, 1024))
            times.append((time.perf_counter() - t) * 1000)
        rows.append([f"SAM {name} decode, cached embedding, {runtime}", repeat, *ms(times), "box and 4 strokes"])
    return rows


def round_trip_rows(client, owner, repeat: int) -> list[list]:
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image as PILImage

    from annotations import smart
    from projects.uploads import images_upload
    from tests.annotations.smart_scenes import scene
    from tests.factories import make_project

    project = make_project(owner=owner, name="Smart")
    s = scene("ellipse", 0, width=1280, height=960, area_side=512)
    buffer = io.BytesIO()
    PILImage.fromarray(s.rgb).save(buffer, format="JPEG", quality=92)
    image = images_upload(
        project=project, user=owner, labels=[], files=[SimpleUploadedFile("scene.jpg", buffer.getvalue())]
    ).stored[0]
    payload = {"box": s.box, "foreground": s.foreground, "background": s.background}
    url = f"/api/images/{image.id}/smart/"

    def post() -> tuple[float, dict]:
        t = time.perf_counter()
        response = client.post(url, payload, format="json")
        assert response.status_code in (200, 202), response.content
        return (time.perf_counter() - t) * 1000, response.json()

    rows = []
    smart._pixels.items.clear()
    cold, body = post()
    assert body["backend"] == "grabcut"
    rows.append(["API round trip, GrabCut, first Extract (decodes the 1280x960 JPEG)", 1, f"{cold:.1f} ms", "", ""])
    times = [post()[0] for _ in range(repeat)]
    rows.append(["API round trip, GrabCut, another Extract on the same image", repeat, *ms(times), ""])

    import torch
    from segment_anything import sam_model_registry

    checkpoint = Path(tempfile.mkdtemp()) / "sam_vit_b_random.pth"
    torch.manual_seed(0)
    torch.save(sam_model_registry["vit_b"]().state_dict(), checkpoint)
    settings.SIGHTLINE_SAM_CHECKPOINT = str(checkpoint)
    from jobs.runner import job_run

    waiting, body = post()
    assert body["preparing"], body  # a request never runs the encoder: it is handed to a worker
    t = time.perf_counter()
    assert job_run(body["job"]) == "finished"
    prefetch = time.perf_counter() - t
    rows.append(
        ["SAM vit_b: the worker's job for one image's embedding (load + embed + write)", 1, f"{prefetch:.2f} s", "", ""]
    )
    smart._embeddings.items.clear()
    disk, body = post()
    assert (body["backend"], body["embedding_cached"]) == ("sam", True)
    rows.append(
        [
            "API round trip, SAM vit_b, first Extract after the job (embedding read from storage)",
            1,
            f"{disk:.1f} ms",
            "",
            "",
        ]
    )
    times = [post()[0] for _ in range(repeat)]
    rows.append(["API round trip, SAM vit_b, another Extract (embedding in memory)", repeat, *ms(times), ""])
    checkpoint.unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("SIGHTLINE_SAM_CHECKPOINT", "")
    import torch
    from segment_anything import sam_model_registry

    with bench_database():
        from tests.conftest import client_for
        from tests.factories import UserFactory

        rows = grabcut_rows(args.repeat)
        torch.manual_seed(0)
        rows += sam_rows(sam_model_registry["vit_b"]().state_dict(), args.repeat)
        owner = UserFactory()
        rows += round_trip_rows(client_for(owner), owner, args.repeat)
    print(f"machine: {machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(table(["step", "runs", "p50", "p95", "note"], rows))


if __name__ == "__main__":
    main()
