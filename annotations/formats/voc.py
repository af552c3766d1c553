"""Pascal VOC XML: one `Annotations/<image>.xml` per image with its boxes, plus `labelmap.txt`."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from annotations.formats import fields
from annotations.formats.base import (
    Dataset,
    DatasetImage,
    Exported,
    FormatError,
    LabelInfo,
    Shape,
    Summary,
    by_stem,
    flat_name,
    read_zip,
    stem,
    tidy,
    zip_file,
)

KEY = "voc"


def write(dataset: Dataset) -> Exported:
    summary = Summary(images=len(dataset.images))
    files = {"labelmap.txt": "".join(f"{label.name}\n" for label in dataset.labels).encode()}
    for image in dataset.images:
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = "images"
        ET.SubElement(root, "filename").text = image.name
        size = ET.SubElement(root, "size")
        for tag, value in (("width", image.width), ("height", image.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        ET.SubElement(root, "segmented").text = "0"
        for shape in image.shapes:
            if shape.kind != "box":
                summary.cannot_hold(f"{shape.kind} objects (Pascal VOC holds boxes only)")
                continue
            _object(root, shape)
            summary.shapes += 1
            if shape.keypoints:
                summary.cannot_hold("keypoints (Pascal VOC has none)", len(shape.keypoints))
        if image.classifications:
            summary.cannot_hold(
                "image classification labels (Pascal VOC holds objects only)", len(image.classifications)
            )
        files[f"Annotations/{stem(flat_name(image.name))}.xml"] = ET.tostring(
            root, encoding="utf-8", xml_declaration=True
        )
    return Exported("voc.zip", zip_file(files), "application/zip", summary)


def _object(root: ET.Element, shape: Shape) -> None:
    g = shape.geometry
    element = ET.SubElement(root, "object")
    ET.SubElement(element, "name").text = shape.label
    ET.SubElement(element, "pose").text = "Unspecified"
    ET.SubElement(element, "truncated").text = "0"
    ET.SubElement(element, "occluded").text = "1" if shape.occluded else "0"
    ET.SubElement(element, "difficult").text = "0"
    ET.SubElement(element, "source").text = shape.source  # not VOC; readers ignore what they do not know
    if shape.score is not None:
        ET.SubElement(element, "score").text = repr(shape.score)
    box = ET.SubElement(element, "bndbox")
    for tag, value in (
        ("xmin", g["x"]),
        ("ymin", g["y"]),
        ("xmax", g["x"] + g["width"]),
        ("ymax", g["y"] + g["height"]),
    ):
        ET.SubElement(box, tag).text = f"{value:.10g}"


def read(content: bytes, *, known: dict[str, tuple[int, int]] | None = None) -> Dataset:
    files = read_zip(content)
    dataset = Dataset()
    if "labelmap.txt" in files:
        names = fields.text(files["labelmap.txt"], "labelmap.txt").splitlines()
        dataset.labels = [LabelInfo(n.strip()) for n in names if n.strip()]
    stems = by_stem(known)
    for path, data in ((path, files[path]) for path in sorted(files)):
        if path.endswith(".xml"):
            dataset.images.append(_image(path, data, stems, known or {}))
    return dataset


def _image(path: str, data: bytes, stems: dict[str, str], known: dict) -> DatasetImage:
    try:
        root = SafeET.fromstring(data)
    except (ET.ParseError, DefusedXmlException) as exc:
        raise FormatError(f"{path}: not valid XML ({exc}).") from None
    filename = root.findtext("filename") or ""
    name = filename if filename in known else stems.get(stem(path.rsplit("/", 1)[-1]), filename or path)
    width, height = known.get(name, (0, 0))
    image = DatasetImage(name=name, width=width, height=height)
    for index, element in enumerate(root.iter("object")):
        where = f"{path} object {index}"
        label = (element.findtext("name") or "").strip()
        if not label:
            raise FormatError(f"{where}: <name> is missing.")
        try:
            xmin, ymin, xmax, ymax = (
                fields.number(element.findtext(f"bndbox/{t}"), f"{where} <{t}>")
                for t in ("xmin", "ymin", "xmax", "ymax")
            )
        except FormatError:
            raise FormatError(f"{where}: <bndbox> needs numeric xmin, ymin, xmax and ymax.") from None
        score = element.findtext("score")
        source = (element.findtext("source") or "manual").strip()
        image.shapes.append(
            Shape(
                label=label,
                kind="box",
                geometry={"x": tidy(xmin), "y": tidy(ymin), "width": tidy(xmax - xmin), "height": tidy(ymax - ymin)},
                occluded=(element.findtext("occluded") or "0").strip() == "1",
                score=fields.score(score, f"{where} <score>"),
                source=source if source in {"smart", "prediction"} else "manual",
            )
        )
    return image
