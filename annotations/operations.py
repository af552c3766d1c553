"""Geometry operations on one shape of an image, for the labeler and scripts: rasterize, convert to polygon."""

from django.core.exceptions import ValidationError

from annotations import geometry as geo
from projects.models import Image


def shape_rasterize(*, image: Image, kind: str, geometry: dict) -> dict:
    """The shape as a mask; keypoints and attributes are cleared, as spec 000 says."""
    try:
        clean = geo.validate(kind, geometry, width=image.width, height=image.height)
        mask = geo.rasterize(kind, clean, width=image.width, height=image.height)
    except geo.GeometryError as exc:
        raise ValidationError({"geometry": [str(exc)]}) from None
    return {"kind": "mask", "geometry": mask, "keypoints": [], "attributes": {}}


def shape_polygonize(*, image: Image, geometry: dict, simplify: float) -> dict:
    """A mask as polygon parts with holes, `simplify` pixels of deviation allowed."""
    try:
        clean = geo.validate("mask", geometry, width=image.width, height=image.height)
        polygon = geo.polygonize(clean, simplify=simplify)
    except geo.GeometryError as exc:
        raise ValidationError({"geometry": [str(exc)]}) from None
    return {"kind": "polygon", "geometry": polygon}
