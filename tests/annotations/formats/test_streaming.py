"""Imports read an archive's members one at a time; exports read each image only when they write it, into
a file on disk, never all at once into memory."""

import hashlib
import io
import zipfile

from annotations.formats import classification_zip, coco
from annotations.formats.base import Dataset, DatasetImage, LabelInfo, Shape, read_zip
from projects import archives


def archive(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return out.getvalue()


def test_an_import_archive_is_read_one_member_at_a_time(monkeypatch):
    reads = []
    real = archives.member_read
    monkeypatch.setattr(archives, "member_read", lambda a, info: reads.append(info.filename) or real(a, info))
    images = {f"train/cat/{i}.jpg": f"image {i}".encode() for i in range(3)}
    files = read_zip(archive(images))
    assert reads == []  # checking the archive reads no file
    dataset = classification_zip.read(archive(images))
    assert sorted(reads) == sorted(images)  # each read once, to know its hash
    assert all(image.content is None for image in dataset.images)  # kept as readers, not bytes
    by_name = {image.name: image for image in dataset.images}
    assert by_name["0.jpg"].data() == b"image 0"
    assert by_name["0.jpg"].sha256 == hashlib.sha256(b"image 0").hexdigest()
    assert files["train/cat/2.jpg"] == b"image 2"


def test_an_export_reads_each_image_when_it_writes_it_into_a_file_on_disk():
    loaded = []

    def loader(i):
        return lambda: loaded.append(i) or f"bytes {i}".encode()

    dataset = Dataset(
        labels=[LabelInfo("cat")],
        images=[
            DatasetImage(name=f"{i}.jpg", width=4, height=4, classifications=["cat"], load=loader(i)) for i in range(3)
        ],
    )
    exported = classification_zip.write(dataset)
    assert loaded == [0, 1, 2]
    assert not isinstance(exported.file, io.BytesIO)  # a temporary file, not memory
    with zipfile.ZipFile(exported.file) as z:
        assert z.read("train/cat/1.jpg") == b"bytes 1"
        assert z.getinfo("train/cat/1.jpg").compress_type == zipfile.ZIP_STORED  # JPEGs are not deflated again


def test_coco_spools_its_annotations_and_reads_back_the_same():
    shapes = [Shape("cat", "box", {"x": float(i), "y": 2.0, "width": 3.0, "height": 4.0}) for i in range(5)]
    dataset = Dataset(
        labels=[LabelInfo("cat")], images=[DatasetImage(name="a.jpg", width=20, height=20, shapes=shapes)]
    )
    exported = coco.write(dataset)
    assert not isinstance(exported.file, io.BytesIO)
    back = coco.read(exported.content, known={"a.jpg": (20, 20)})
    assert [s.geometry for s in back.images[0].shapes] == [s.geometry for s in shapes]
    assert exported.summary.shapes == 5
