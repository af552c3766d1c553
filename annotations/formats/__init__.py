"""Import and export formats, one module each; every format imports what it exports.

A format has a KEY, `write(dataset) -> Exported` and `read(content, known=...) -> Dataset`,
where `known` maps the project's image names to their sizes. CARRIES_IMAGES marks a format
whose files hold the image bytes themselves.
"""

from annotations.formats import classification_zip, coco, csv_labels, masks, sightline_json, voc, yolo

FORMATS = {
    module.KEY: module
    for module in (
        csv_labels,
        sightline_json,
        coco,
        yolo.detection,
        yolo.segmentation,
        voc,
        masks.png_masks,
        masks.bw_masks,
        classification_zip,
    )
}

# What people call each format, for pages and job lists (the keys stay what the API takes).
FORMAT_NAMES = {
    "csv": "CSV (image labels)",
    "json": "Sightline JSON",
    "coco": "COCO",
    "yolo": "YOLO detection",
    "yolo-seg": "YOLO segmentation",
    "voc": "Pascal VOC",
    "png-masks": "PNG colour masks",
    "bw-masks-zip": "Black-and-white masks (ZIP)",
    "classification-zip": "Classification folders (ZIP)",
}
