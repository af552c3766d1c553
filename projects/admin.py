"""Django admin is where owners manage roles, memberships and ownership; writes go through services."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction

from projects import services
from projects.models import Image, Label, Membership, Project, Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "is_builtin", "permission_count"]
    filter_horizontal = ["permissions"]
    readonly_fields = ["is_builtin"]

    @admin.display(description="permissions")
    def permission_count(self, role: Role) -> int:
        return role.permissions.count()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Members holding this role get its new permissions now, not on their next change.
        services.role_memberships_resync(role=form.instance)

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_builtin


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "id", "owner", "created_at"]
    search_fields = ["name", "owner__username"]
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline]

    def save_model(self, request, obj: Project, form, change):
        if not change:
            created = services.project_create(owner=obj.owner, name=obj.name, description=obj.description)
            obj.pk = created.pk
            return
        previous_owner_id = Project.objects.values_list("owner_id", flat=True).get(pk=obj.pk)
        new_owner = obj.owner
        obj.owner_id = previous_owner_id
        services.project_update(project=obj, name=obj.name, description=obj.description)
        if new_owner.pk != previous_owner_id:
            services.project_transfer_ownership(project=obj, new_owner=new_owner)

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        memberships = formset.save(commit=False)
        project = form.instance
        for membership in formset.deleted_objects:
            services.membership_remove(membership=membership)
        for membership in memberships:
            try:
                services.membership_set(project=project, user=membership.user, role=membership.role)
            except ValidationError as exc:
                self.message_user(request, "; ".join(exc.messages), level="error")

    def delete_model(self, request, obj: Project):
        services.project_delete(project=obj)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["project__name", "user__username", "user__email"]
    autocomplete_fields = ["project", "user"]

    def save_model(self, request, obj: Membership, form, change):
        membership = services.membership_set(project=obj.project, user=obj.user, role=obj.role)
        obj.pk = membership.pk

    def delete_model(self, request, obj: Membership):
        services.membership_remove(membership=obj)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "color", "hotkey"]
    search_fields = ["name", "project__name"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "width", "height", "created_at"]
    search_fields = ["name", "sha256"]
    list_filter = ["is_validation"]
    readonly_fields = ["sha256", "width", "height", "file", "thumbnail", "uploaded_by"]
