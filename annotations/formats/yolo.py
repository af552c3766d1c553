"""YOLO detection (`yolo`) and segmentation (`yolo-seg`): one text file per image, normalised coordinates.

A ZIP with `obj.names` (one class a line), `data.yaml`, and `labels/<image>.txt`. Every image
gets its file, empty when it holds no object (a background image, as YOLO expects).
"""

from __future__ import annotations

from annotations.formats import fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Shape,
    Summary,
    archived_images,
    by_stem,
    flat_name,
    read_zip,
    stem,
    tidy,
    upright_size,
    zip_file,
)


def _number(value: float) -> str:
    return f"{value:.10g}"


class _Yolo:
    INCLUDES_IMAGES = True  # "Include images": images/ beside labels/, the layout YOLO trainers read

    def __init__(self, key: str, kinds: set[str]):
        self.KEY, self.kinds = key, kinds

    @staticmethod
    def image_path(image: DatasetImage) -> str:
        return f"{stem(flat_name(image.name))}{image.suffix}"

    def write(self, dataset: Dataset) -> Exported:
        summary = Summary(images=len(dataset.images))
        index = {label.name: i for i, label in enumerate(dataset.labels)}
        files = {}
        for image in dataset.images:
            lines = []
            for shape in image.shapes:
                lines += self._lines(shape, image, index[shape.label], summary)
            if image.classifications:
                summary.cannot_hold("image classification labels (YOLO holds objects only)", len(image.classifications))
            files[f"labels/{stem(flat_name(image.name))}.txt"] = "".join(f"{line}\n" for line in lines).encode()
        names = [label.name for label in dataset.labels]
        files["obj.names"] = "".join(f"{n}\n" for n in names).encode()
        yaml_names = ", ".join('"' + n.replace('"', '\\"') + '"' for n in names)
        files["data.yaml"] = f"nc: {len(names)}\nnames: [{yaml_names}]\n".encode()
        return Exported(f"{self.KEY}.zip", zip_file(files), "application/zip", summary)

    def _lines(self, shape: Shape, image: DatasetImage, cls: int, summary: Summary) -> list[str]:
        if shape.kind not in self.kinds:
            summary.cannot_hold(f"{shape.kind} objects ({self.KEY} holds {_kinds_text(self.kinds)} only)")
            return []
        if shape.keypoints:
            summary.cannot_hold(f"keypoints ({self.KEY} has none)", len(shape.keypoints))
        w, h = image.width, image.height
        if shape.kind == "box":
            g = shape.geometry
            values = [(g["x"] + g["width"] / 2) / w, (g["y"] + g["height"] / 2) / h, g["width"] / w, g["height"] / h]
            summary.shapes += 1
            return [" ".join([str(cls), *map(_number, values)])]
        parts = shape.geometry["parts"]
        if any(part["holes"] for part in parts):
            summary.cannot_hold(
                f"polygon holes ({self.KEY} has none; the outlines are kept)", sum(len(p["holes"]) for p in parts)
            )
        if len(parts) > 1:
            summary.cannot_hold(
                f"polygon parts beyond the first ({self.KEY} writes each part as its own object)", len(parts) - 1
            )
        summary.shapes += 1
        return [" ".join([str(cls), *(_number(v) for x, y in part["outer"] for v in (x / w, y / h))]) for part in parts]

    def read(self, content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
        files = read_zip(content)
        names = _class_names(files)
        dataset = Dataset(labels=[LabelInfo(name) for name in names])
        stems = by_stem(known)
        carried = {stem(path): (path, read) for path, read in archived_images(files).items()}
        for path, data in ((path, files[path]) for path in sorted(files)):
            if not (path.startswith("labels/") and path.endswith(".txt")):
                continue
            key = path.removeprefix("labels/").removesuffix(".txt")
            name = stems.get(key)
            load = None
            if name is None and key in carried:
                # An image the archive brings along: it is stored first, then labelled, at its upright size.
                name, load = carried[key]
                width, height = upright_size(load(), where=f"images/{name}")
            elif name is None:
                dataset.images.append(DatasetImage(name=path, width=0, height=0))  # reported as not found
                continue
            else:
                width, height = known[name]
            image = DatasetImage(name=name, width=width, height=height, load=load)
            for number, line in enumerate(fields.text(data, path).splitlines(), start=1):
                if line.strip():
                    image.shapes.append(self._shape(line, names, width, height, f"{path} line {number}"))
            dataset.images.append(image)
        return dataset

    def _shape(self, line: str, names: list[str], width: int, height: int, where: str) -> Shape:
        parts = line.split()
        try:
            cls, values = int(parts[0]), [fields.number(v, where) for v in parts[1:]]
        except (ValueError, IndexError, FormatError):
            raise FormatError(f"{where}: expected a class number and then numbers.") from None
        if not 0 <= cls < len(names):
            raise FormatError(f"{where}: class {cls} is not in obj.names ({len(names)} classes).")
        if "box" in self.kinds:
            if len(values) != 4:
                raise FormatError(f"{where}: expected class cx cy w h, got {len(parts)} fields.")
            cx, cy, bw, bh = values
            geometry = {
                "x": tidy((cx - bw / 2) * width),
                "y": tidy((cy - bh / 2) * height),
                "width": tidy(bw * width),
                "height": tidy(bh * height),
            }
            return Shape(label=names[cls], kind="box", geometry=geometry)
        if len(values) < 6 or len(values) % 2:
            raise FormatError(f"{where}: a polygon needs at least 3 x y pairs.")
        outer = [[tidy(values[i] * width), tidy(values[i + 1] * height)] for i in range(0, len(values), 2)]
        return Shape(label=names[cls], kind="polygon", geometry={"parts": [{"outer": outer, "holes": []}]})


def _kinds_text(kinds: set[str]) -> str:
    return "boxes" if kinds == {"box"} else "polygons"


def _class_names(files: dict[str, bytes]) -> list[str]:
    for candidate in ("obj.names", "classes.txt"):
        if candidate in files:
            return [n.strip() for n in fields.text(files[candidate], candidate).splitlines() if n.strip()]
    raise FormatError("The ZIP needs obj.names (or classes.txt) with one class name per line.")


detection = _Yolo("yolo", {"box"})
segmentation = _Yolo("yolo-seg", {"polygon"})
