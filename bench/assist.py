"""Model Assist in Chromium: the waiting per image in the loop "open the image, suggestions shown, commit all, next".

A detector of the default size (medium, ONNX export on, as deployed) is trained through the API on generated
640x480 scenes, then new scenes are labeled in the labeler: open the page (Model Assist stays on from the first
image's M), wait for the greyed suggestions, press S, wait until the committed annotations are back from the
server, press D for the next image. Twice: with predictions pre-computed by the bulk pre-label job, and predicted
on demand when M is pressed. The web side runs in this
process with the web's one torch thread. Run: .venv/bin/python bench/assist.py [--images N] [--epochs N]
"""

import argparse
import os
import time

from harness import bench_database, chromium_logged_in, machine, percentile, table

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")


def _step(page, pressed: float, look_ms: int) -> tuple[float, float, float, int]:
    """From `pressed` (wall-clock ms): the page's suggestions drawn; the person looks at them (not counted: the loop's
    waiting is what the person waits for); S, and the annotations back. Measured on the page's own clock (Model
    Assist's timing), so Playwright's polling is not counted. ms to drawn, ms to committed, their sum, boxes."""
    page.wait_for_selector("body[data-labeler-ready=true]")
    if not page.evaluate("() => window.sightline.assist.on"):  # it stays on from one image to the next
        page.keyboard.press("m")
    page.wait_for_function("() => window.sightline.assist.timing.drawn > 0")
    drawn = page.evaluate("() => performance.timeOrigin + window.sightline.assist.timing.drawn")
    count = page.evaluate("() => window.sightline.assist.shown().length")
    page.wait_for_timeout(look_ms)
    commit_ms = 0.0
    if count:
        with page.expect_response(lambda r: r.url.endswith("/predictions/accept/")):
            page.keyboard.press("s")
        page.wait_for_function("() => window.sightline.assist.timing.committed > 0")
        commit_ms = page.evaluate(
            "() => window.sightline.assist.timing.committed - window.sightline.assist.timing.commitStarted"
        )
    shown_ms = drawn - pressed
    return shown_ms, commit_ms, shown_ms + commit_ms, count


def _loop(page, first_url: str, images: int, look_ms: int) -> tuple[list[float], list[float], list[float], list[int]]:
    """Open the first image (not counted: it warms up), then `images` times: D (next image, as a person goes on),
    the suggestions shown, S, the annotations saved. Per image: ms to shown, ms to saved after, total, committed."""
    page.goto(first_url)
    _step(page, time.time() * 1000, look_ms)
    rows = []
    for _ in range(images):
        following = page.evaluate("() => JSON.parse(document.getElementById('labeler-config').textContent).nextUrl")
        pressed = time.time() * 1000
        page.keyboard.press("d")
        page.wait_for_url(f"**{following}", wait_until="commit")
        rows.append(_step(page, pressed, look_ms))
    shown_ms, commit_ms, total_ms, committed = (list(column) for column in zip(*rows, strict=True))
    return shown_ms, commit_ms, total_ms, committed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=12, help="images labeled per loop")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument(
        "--look-ms", type=int, default=1000, help="how long the person looks at the suggestions before S (not counted)"
    )
    args = parser.parse_args()
    with bench_database():
        from detection import KINDS, textured_scene
        from django.conf import settings
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django_q.conf import Conf
        from pytest_django.live_server_helper import LiveServer

        from projects.models import Label
        from projects.uploads import images_upload
        from tests.conftest import client_for
        from tests.factories import UserFactory, make_project
        from training.ml import runtime
        from training.models import ModelVersion, Prediction

        settings.SIGHTLINE_DETECTOR_ONNX = True
        Conf.SYNC = True  # jobs run in this process, as a worker runs them
        owner = UserFactory(username="bench")
        api = client_for(owner)
        project = make_project(owner=owner, name="assist")
        labels = {name: Label.objects.create(project=project, name=name) for name in KINDS}

        def upload(seed: int):
            data, rows = textured_scene(seed)
            name = f"s{seed}.jpg" if data[:2] == b"\xff\xd8" else f"s{seed}.png"
            files = [SimpleUploadedFile(name, data)]
            return images_upload(project=project, user=owner, files=files, labels=[]).stored[0], rows

        for seed in range(24):
            image, rows = upload(seed)
            shapes = [
                {"label": labels[KINDS[k]].id, "kind": "box", "geometry": {"x": x, "y": y, "width": w, "height": h}}
                for x, y, w, h, k in rows
            ]
            api.put(f"/api/images/{image.id}/annotations/", {"revision": 0, "shapes": shapes}, format="json")
        started = api.post(
            f"/api/projects/{project.id}/training-jobs/",
            {"task": "detection", "name": "boxes", "parameters": {"epochs": args.epochs}},
            format="json",
        )
        assert started.status_code == 201, started.content
        model = ModelVersion.objects.get(name="boxes")
        runtime.threads_limit(settings.SIGHTLINE_WEB_TORCH_THREADS)  # the web process's threads from here on
        precomputed = [upload(1000 + i)[0] for i in range(args.images)]
        on_demand = [upload(2000 + i)[0] for i in range(args.images)]
        prelabel = api.post(
            f"/api/projects/{project.id}/prelabel/",
            {"model": model.id, "images": [i.id for i in precomputed]},
            format="json",
        )
        assert prelabel.status_code == 202, prelabel.content
        assert Prediction.objects.filter(image__in=precomputed).exists()

        server = LiveServer("localhost:0")
        try:
            with chromium_logged_in(server.url, "bench") as page:

                def walk(images) -> str:
                    """The labeler on the newest of these images, walking them (as the grid's selection does)."""
                    ids = ",".join(str(i.id) for i in images)
                    newest = max(i.id for i in images)
                    return f"{server.url}/projects/{project.id}/images/{newest}/label/?ids={ids}"

                stored = _loop(page, walk(precomputed), len(precomputed) - 1, args.look_ms)
                asked = _loop(page, walk(on_demand), len(on_demand) - 1, args.look_ms)
        finally:
            server.stop()
    rows = []
    for name, target, (shown_ms, commit_ms, total_ms, committed) in (
        ("pre-computed", "<= 300", stored),
        ("predicted on demand", "<= 1000", asked),
    ):
        with_boxes = [ms for ms, count in zip(commit_ms, committed, strict=True) if count]
        rows.append(
            [
                name,
                target,
                f"{percentile(total_ms, 50):.0f}",
                f"{percentile(total_ms, 95):.0f}",
                f"{percentile(shown_ms, 50):.0f}",
                f"{percentile(with_boxes, 50):.0f}" if with_boxes else "-",
                f"{len(with_boxes)} of {len(committed)}, {sum(committed) / len(committed):.1f}",
            ]
        )
    print(
        f"machine: {machine()}; Chromium headless; {args.images - 1} images per loop after one to warm up; "
        f"{args.look_ms} ms looking at each image's suggestions before S, not counted"
    )
    headers = [
        "suggestions",
        "target p50 ms",
        "p50 ms",
        "p95 ms",
        "open + shown p50",
        "commit all p50 (images with boxes)",
        "images with boxes, boxes per image",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
