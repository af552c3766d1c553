"""Training in Django admin: jobs, models and dataset versions to look at; deletes go through the services."""

from django.contrib import admin

from training import services
from training.models import DatasetVersion, ModelVersion, TrainingJob


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by training runs: shown in full, changed only through the app."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(TrainingJob)
class TrainingJobAdmin(ReadOnlyAdmin):
    list_display = ["name", "project", "task", "status", "epoch", "epochs", "device", "created_at", "finished_at"]
    list_filter = ["status", "task"]
    search_fields = ["name", "project__name"]
    actions = ["cancel"]

    @admin.action(description="Cancel or stop the selected jobs")
    def cancel(self, request, queryset):
        for job in queryset.active():
            services.training_job_cancel(job=job)

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_active

    def delete_queryset(self, request, queryset):
        for job in queryset.exclude(status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING]):
            services.training_job_delete(job=job)


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "project",
        "task",
        "multi_label",
        "backbone",
        "best_epoch",
        "epochs_trained",
        "predict_with",
        "created_at",
    ]
    list_filter = ["task", "multi_label"]
    search_fields = ["name", "project__name"]

    def delete_model(self, request, obj: ModelVersion):
        services.model_version_delete(model=obj)

    def delete_queryset(self, request, queryset):
        for model in queryset.select_related("job"):
            services.model_version_delete(model=model)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ["project", "number", "task", "multi_label", "split_method", "created_at"]
    list_filter = ["task"]

    def has_delete_permission(self, request, obj=None):
        return False  # models point at the version they learned from
