"""The smart labeling tool's engines (spec 000, "Smart labeling tool"): plain numpy, OpenCV and torch.

`prompts` turns a work area and foreground/background marks into one checked structure, `grabcut`
segments with OpenCV's GrabCut (no weights needed), `sam` with Segment Anything from a checkpoint
the user provides. Nothing here knows Django; `annotations.smart` wires them to images and settings.
"""
