"""Classification labels of an image: any number of them, at most one the default."""

from django.db import models
from django.db.models import Q


class Classification(models.Model):
    image = models.ForeignKey("projects.Image", on_delete=models.CASCADE, related_name="classifications")
    label = models.ForeignKey("projects.Label", on_delete=models.CASCADE, related_name="classifications")
    is_default = models.BooleanField(default=False, help_text="Single-label training uses the default label.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "-is_default", "label__name"]
        constraints = [
            models.UniqueConstraint(fields=["image", "label"], name="classification_unique_label"),
            models.UniqueConstraint(fields=["image"], condition=Q(is_default=True), name="classification_one_default"),
        ]

    def __str__(self) -> str:
        return f"{self.image} is {self.label}{' (default)' if self.is_default else ''}"
