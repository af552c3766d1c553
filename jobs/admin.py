from django.contrib import admin

from jobs import services
from jobs.models import Job, WorkerHeartbeat


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "project", "status", "progress", "phase", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    search_fields = ["project__name", "error", "phase"]
    readonly_fields = [f.name for f in Job._meta.fields]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected jobs (a running one stops at its next step)")
    def cancel(self, request, queryset):
        for job in queryset.active():
            services.job_cancel(job=job)

    def has_add_permission(self, request) -> bool:
        return False  # jobs start from their pages and the API, which check what they need


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ["host", "cluster", "beat_at"]
    readonly_fields = ["host", "cluster", "beat_at"]
