"""Admin: the history that bulk replaces keep, read-only, and purged by deleting entries."""

from django.contrib import admin

from annotations.models import ReplacedDocument


@admin.register(ReplacedDocument)
class ReplacedDocumentAdmin(admin.ModelAdmin):
    list_display = ["image", "revision", "reason", "replaced_by", "replaced_at", "objects"]
    list_filter = ["reason", "image__project"]
    list_select_related = ["image", "replaced_by"]
    date_hierarchy = "replaced_at"
    readonly_fields = ["image", "revision", "shapes", "classifications", "reason", "replaced_by", "replaced_at"]

    @admin.display(description="objects")
    def objects(self, entry: ReplacedDocument) -> int:
        return len(entry.shapes)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
