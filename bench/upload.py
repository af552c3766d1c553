"""Upload benchmark: 1,000 JPEGs of 1024x768 through POST /api/projects/{id}/images/, in batches.

Prints images per second for the whole path: multipart parsing, decoding, checks, sha256,
thumbnail, file storage and database rows. Run: .venv/bin/python bench/upload.py [--count N]
"""

import argparse
import io
import time

import numpy as np
from harness import bench_database, machine, table
from PIL import Image as PILImage


def make_jpegs(count: int) -> list[tuple[str, bytes]]:
    """Distinct 1024x768 photos: crops of scikit-image's samples, shifted and re-lit per file."""
    import skimage.data

    sources = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    bases = [np.asarray(PILImage.fromarray(s).resize((1400, 1000))) for s in sources]
    out = []
    for i in range(count):
        base = bases[i % len(bases)]
        dx, dy = (i * 7) % 370, (i * 13) % 230
        crop = base[dy : dy + 768, dx : dx + 1024].astype(np.int16) + (i % 40) - 20
        buffer = io.BytesIO()
        PILImage.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
        out.append((f"photo_{i:04}.jpg", buffer.getvalue()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    jpegs = make_jpegs(args.count)
    megabytes = sum(len(d) for _, d in jpegs) / 1e6

    with bench_database():
        from django.core.files.uploadedfile import SimpleUploadedFile

        from tests.conftest import client_for
        from tests.factories import UserFactory, make_project

        owner = UserFactory()
        project = make_project(owner=owner)
        client = client_for(owner)
        url = f"/api/projects/{project.id}/images/"
        stored = 0
        start = time.perf_counter()
        for i in range(0, len(jpegs), args.batch):
            files = [SimpleUploadedFile(name, data) for name, data in jpegs[i : i + args.batch]]
            response = client.post(url, {"files": files}, format="multipart")
            stored += len(response.json()["stored"])
        seconds = time.perf_counter() - start
    assert stored == args.count, f"stored {stored} of {args.count}"
    print(f"machine: {machine()}")
    print(
        table(
            ["images", "batch", "MB", "seconds", "images/s", "MB/s"],
            [
                [
                    args.count,
                    args.batch,
                    f"{megabytes:.1f}",
                    f"{seconds:.1f}",
                    f"{args.count / seconds:.1f}",
                    f"{megabytes / seconds:.1f}",
                ]
            ],
        )
    )


if __name__ == "__main__":
    main()
