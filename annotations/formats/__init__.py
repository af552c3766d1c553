"""Import and export formats, one module each; every format imports what it exports."""

from annotations.formats import coco, csv_labels, sightline_json

FORMATS = {module.KEY: module for module in (csv_labels, sightline_json, coco)}
