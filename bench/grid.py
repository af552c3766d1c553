"""Grid benchmark: server time of the project page with 10,000 images (first, middle, last page, htmx).

Image rows, each with a classification label, are bulk-inserted (the page reads rows only;
thumbnails are separate requests).
Run: .venv/bin/python bench/grid.py [--images N]
"""

import argparse
import hashlib
from urllib.parse import quote

from harness import bench_database, machine, percentile, table, timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    with bench_database():
        from django.test import Client

        from annotations.models import Classification
        from projects.models import Image, Label
        from projects.views import GRID_PAGE_SIZE
        from tests.factories import UserFactory, make_project

        owner = UserFactory()
        project = make_project(owner=owner)
        Image.objects.bulk_create(
            Image(
                project=project,
                name=f"img_{i:05}.jpg",
                width=1024,
                height=768,
                uploaded_by=owner,
                sha256=hashlib.sha256(str(i).encode()).hexdigest(),
                file=f"images/{project.id}/{i}.jpg",
                thumbnail=f"thumbnails/{project.id}/{i}.webp",
            )
            for i in range(args.images)
        )
        labels = [Label.objects.create(project=project, name=f"class {k}") for k in range(10)]
        Classification.objects.bulk_create(
            Classification(image=image, label=labels[image.id % 10], is_default=True)
            for image in Image.objects.for_project(project).only("id")
        )
        client = Client()
        client.force_login(owner)
        last = -(-args.images // GRID_PAGE_SIZE)
        cases = [
            ("full page, page 1", f"/projects/{project.id}/", {}),
            ("htmx partial, page 1", f"/projects/{project.id}/?page=1", {"HTTP_HX_REQUEST": "true"}),
            (
                f"htmx partial, page {last // 2}",
                f"/projects/{project.id}/?page={last // 2}",
                {"HTTP_HX_REQUEST": "true"},
            ),
            (f"htmx partial, page {last} (last)", f"/projects/{project.id}/?page={last}", {"HTTP_HX_REQUEST": "true"}),
            (
                "filter: labels expression",
                f"/projects/{project.id}/?labels=" + quote('("class 1" OR "class 2") AND NOT "class 3"'),
                {"HTTP_HX_REQUEST": "true"},
            ),
            (
                "filter: labels + type + status",
                f"/projects/{project.id}/?labels=" + quote('"class 4"') + "&type=single&status=not-seen",
                {"HTTP_HX_REQUEST": "true"},
            ),
        ]
        rows = []
        for name, url, headers in cases:
            assert client.get(url, **headers).status_code == 200
            ms = timed(lambda url=url, headers=headers: client.get(url, **headers), args.repeat)
            rows.append([name, f"{percentile(ms, 50):.1f}", f"{percentile(ms, 95):.1f}", f"{max(ms):.1f}"])
    print(f"machine: {machine()}; {args.images:,} images, {args.repeat} requests per case")
    print(table(["request", "p50 ms", "p95 ms", "max ms"], rows))


if __name__ == "__main__":
    main()
