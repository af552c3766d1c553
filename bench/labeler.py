"""Labeler benchmark in Chromium: 5,000 polygons of 20 vertices on a 4000x3000 image.

Measures opening the image with all its shapes, a pan or zoom frame, selecting a shape, and
adding one until it is drawn. Run: .venv/bin/python bench/labeler.py [--shapes N]
"""

import argparse
import io
import os
import random
import time

from harness import bench_database, chromium_logged_in, machine, percentile, table

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

FRAMES = """(rounds) => {
  const { renderer } = window.sightline, out = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    if (i % 2) renderer.zoomAt(400 + i, 300, i % 4 === 1 ? 1.1 : 1 / 1.1); else renderer.pan(7, -5);
    if (renderer.frame) { cancelAnimationFrame(renderer.frame); renderer.frame = 0; }
    renderer.draw();
    out.push(performance.now() - t);
  }
  return out;
}"""
SELECT = """([x, y]) => {
  const { tools, renderer } = window.sightline, t = performance.now();
  tools.mode.down(tools, [x, y], { shiftKey: false, altKey: false }); tools.drag = null;
  if (renderer.frame) { cancelAnimationFrame(renderer.frame); renderer.frame = 0; }
  renderer.draw();
  return [performance.now() - t, renderer.selected !== undefined];
}"""
ADD = """(i) => {
  const { tools, renderer } = window.sightline, t = performance.now();
  tools.create("box", { x: 10 + i, y: 10 + i, width: 50, height: 40 });
  if (renderer.frame) { cancelAnimationFrame(renderer.frame); renderer.frame = 0; }
  renderer.draw();
  return performance.now() - t;
}"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", type=int, default=5000)
    args = parser.parse_args()
    with bench_database():
        from django.core.files.uploadedfile import SimpleUploadedFile
        from PIL import Image as PILImage
        from pytest_django.live_server_helper import LiveServer

        from annotations.services import documents
        from projects.models import Label
        from projects.uploads import images_upload
        from tests.factories import UserFactory, make_project

        owner = UserFactory(username="bench")
        project = make_project(owner=owner)
        picture = io.BytesIO()
        PILImage.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(picture, "JPEG", quality=80)
        image = images_upload(
            project=project, user=owner, labels=[], files=[SimpleUploadedFile("big.jpg", picture.getvalue())]
        ).stored[0]
        label = Label.objects.create(project=project, name="cell", color="#00c0ff")
        rng = random.Random(3)
        shapes = []
        for _ in range(args.shapes):
            import math

            cx, cy, r = rng.uniform(40, 3960), rng.uniform(40, 2960), rng.uniform(8, 35)
            ring = [[cx + r * math.cos(k * math.pi / 10), cy + r * math.sin(k * math.pi / 10)] for k in range(20)]
            shapes.append({"label": label.id, "kind": "polygon", "geometry": {"parts": [{"outer": ring, "holes": []}]}})
        documents.documents_save_many(
            project=project, user=owner, mode="append", items=[{"image": image.pk, "shapes": shapes}]
        )
        first = shapes[0]["geometry"]["parts"][0]["outer"]
        centre = [sum(p[0] for p in first) / 20, sum(p[1] for p in first) / 20]

        server = LiveServer("localhost:0")
        try:
            with chromium_logged_in(server.url, "bench") as page:
                url = f"{server.url}/projects/{project.id}/images/{image.pk}/label/"
                opens = []
                for _ in range(5):
                    start = time.perf_counter()
                    page.goto(url)
                    page.wait_for_selector("body[data-labeler-ready=true]")
                    opens.append((time.perf_counter() - start) * 1000)
                fitted = page.evaluate(FRAMES, 60)
                page.evaluate("() => { const r = window.sightline.renderer; r.view = {scale: 1, x: -1500, y: -1000}; }")
                zoomed = page.evaluate(FRAMES, 60)
                selects = [page.evaluate(SELECT, centre) for _ in range(20)]
                assert all(hit for _, hit in selects)
                adds = [page.evaluate(ADD, i) for i in range(20)]
                visible = page.evaluate("() => window.sightline.renderer.drawn")
        finally:
            server.stop()
    rows = [
        ["open the image with all shapes", "<= 1000", f"{percentile(opens, 50):.0f}", f"{max(opens):.0f}"],
        [
            f"pan/zoom frame, whole image ({args.shapes:,} drawn)",
            "<= 16",
            f"{percentile(fitted, 50):.1f}",
            f"{percentile(fitted, 95):.1f}",
        ],
        [
            f"pan/zoom frame, zoomed in ({visible:,} drawn)",
            "<= 16",
            f"{percentile(zoomed, 50):.1f}",
            f"{percentile(zoomed, 95):.1f}",
        ],
        [
            "select a shape (hit test + frame)",
            "<= 16",
            f"{percentile([s for s, _ in selects], 50):.1f}",
            f"{percentile([s for s, _ in selects], 95):.1f}",
        ],
        ["add a shape and see it drawn", "<= 50", f"{percentile(adds, 50):.1f}", f"{percentile(adds, 95):.1f}"],
    ]
    print(f"machine: {machine()}; Chromium headless, software rendering")
    print(table(["case", "target ms", "p50 ms", "p95 / max ms"], rows))


if __name__ == "__main__":
    main()
