"""System checks printed when Sightline starts: a SAM checkpoint that cannot be used is said at once,
not discovered on the first click. The tool then runs on GrabCut, and /healthz reports the error."""

from django.core import checks


@checks.register()
def sam_checkpoint_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    from annotations.smart import smart_backend

    backend = smart_backend()
    if not backend.error:
        return []
    return [
        checks.Warning(
            backend.error,
            hint="Point SIGHTLINE_SAM_CHECKPOINT at a vit_b, vit_l or vit_h checkpoint from segment-anything, "
            "or unset it to use GrabCut. Until then the smart tool uses GrabCut.",
            id="sightline.W001",
        )
    ]
