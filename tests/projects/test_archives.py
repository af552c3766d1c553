"""Archive safety as pure rules: paths, counts, sizes and ratios."""

import io
import zipfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from projects.archives import ArchiveRejected, Limits, read_entries

LIMITS = Limits(max_entries=100, max_unpacked_bytes=10**8, max_ratio=100, max_entry_bytes=10**6)


def archive(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    buffer.seek(0)
    return buffer


def test_entries_come_with_their_folder():
    entries = list(
        read_entries(archive({"a/b/c.png": b"1", "d.png": b"2", "e/": b"", ".DS_Store": b"x"}), limits=LIMITS)
    )
    assert [(e.path, e.folder, e.data) for e in entries] == [("a/b/c.png", "b", b"1"), ("d.png", None, b"2")]


segment = st.text(alphabet="abc.-_", min_size=1, max_size=5)


@given(st.lists(segment, max_size=3), st.lists(segment, max_size=3))
def test_any_path_with_a_dotdot_segment_is_refused(before, after):
    name = "/".join([*before, "..", *after, "x.png"])
    with pytest.raises(ArchiveRejected, match="a path leading outside it"):
        list(read_entries(archive({name: b"1"}), limits=LIMITS))


@pytest.mark.parametrize("name", ["/abs.png", "C:/windows.png", "C:\\windows.png"])
def test_absolute_paths_are_refused(name):
    with pytest.raises(ArchiveRejected, match="an absolute path"):
        list(read_entries(archive({name: b"1"}), limits=LIMITS))


def test_an_entry_that_unpacks_larger_than_declared_is_refused():
    buffer = archive({"a.bin": b"x" * 1000})
    raw = bytearray(buffer.getvalue())
    # Shrink the declared uncompressed size in the central directory (offset 24 of its record).
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")
    local = raw.find(b"PK\x03\x04")
    raw[local + 22 : local + 26] = (10).to_bytes(4, "little")
    with pytest.raises(ArchiveRejected, match="a.bin"):
        list(read_entries(io.BytesIO(bytes(raw)), limits=LIMITS))


def test_an_entry_over_the_size_limit_is_refused_alone():
    limits = Limits(max_entries=100, max_unpacked_bytes=10**8, max_ratio=100, max_entry_bytes=3)
    entries = list(read_entries(archive({"big.png": b"1234", "small.png": b"12"}), limits=limits))
    assert [(e.path, e.data, e.refusal) for e in entries] == [
        ("big.png", None, "The file is 4 bytes; the limit is 3."),
        ("small.png", b"12", None),
    ]
