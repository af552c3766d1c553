"""Django admin is where owners manage roles, memberships and ownership; writes go through services."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count

from projects import services
from projects.models import Image, Label, Membership, Project, Role


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "is_builtin", "permission_count"]
    filter_horizontal = ["permissions"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(permission_total=Count("permissions"))

    @admin.display(description="permissions", ordering="permission_total")
    def permission_count(self, role: Role) -> int:
        return role.permission_total

    def get_readonly_fields(self, request, obj=None):
        # Code finds built-in roles by name, and the Owner must keep every permission.
        if obj is not None and obj.name == Role.OWNER:
            return ["is_builtin", "name", "permissions"]
        if obj is not None and obj.is_builtin:
            return ["is_builtin", "name"]
        return ["is_builtin"]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        # Members holding this role get its new permissions now, not on their next change.
        services.role_memberships_resync(role=form.instance)

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_builtin

    def delete_queryset(self, request, queryset):
        queryset.filter(is_builtin=False).delete()


class MembershipForm(forms.ModelForm):
    """Refuses what the services would refuse, so admin shows a form error instead of failing."""

    class Meta:
        model = Membership
        fields = ["project", "user", "role"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is not None and data.get("user") and data.get("role"):
            services.membership_check(project=project, user=data["user"], role=data["role"])
        return data


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
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
        services.project_update(project=obj, name=obj.name, description=obj.description, sync_labels=obj.sync_labels)
        if new_owner.pk != previous_owner_id:
            services.project_transfer_ownership(project=obj, new_owner=new_owner)

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        memberships = formset.save(commit=False)
        project = Project.objects.get(pk=form.instance.pk)
        for membership in formset.deleted_objects:
            self._remove(request, membership)
        for membership in memberships:
            if membership.user_id == project.owner_id and membership.role.name != Role.OWNER:
                continue  # ownership just moved; the transfer already set both roles
            services.membership_set(project=project, user=membership.user, role=membership.role)

    def delete_model(self, request, obj: Project):
        services.project_delete(project=obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            services.project_delete(project=project)

    def _remove(self, request, membership: Membership) -> None:
        try:
            services.membership_remove(membership=membership)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["project__name", "user__username", "user__email"]
    autocomplete_fields = ["project", "user"]

    def save_model(self, request, obj: Membership, form, change):
        membership = services.membership_set(project=obj.project, user=obj.user, role=obj.role)
        obj.pk = membership.pk

    def has_delete_permission(self, request, obj=None):
        # The owner's membership goes only with a transfer of ownership.
        return obj is None or obj.user_id != obj.project.owner_id

    def delete_model(self, request, obj: Membership):
        services.membership_remove(membership=obj)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user"):
            try:
                services.membership_remove(membership=membership)
            except ValidationError as exc:
                self.message_user(request, f"{membership}: {'; '.join(exc.messages)}", level=messages.ERROR)


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

    def delete_queryset(self, request, queryset):
        for project_id in set(queryset.values_list("project_id", flat=True)):
            ids = list(queryset.filter(project_id=project_id).values_list("pk", flat=True))
            services.images_delete(project=Project.objects.get(pk=project_id), image_ids=ids)
