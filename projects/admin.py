"""Django admin is where owners manage roles, memberships, labels and ownership; writes go through services.

Staff see every project, as Django's admin always did. A project's Owner and Admins (whoever holds
manage_members_project) may sign in too without being staff (config/admin.py); every admin here then shows them
only the projects they manage (ProjectScoped): querysets, choices, filters and bulk actions are cut to those
projects, any other project's object is a 404, and they name members by exact username or e-mail, never from a list
of the server's users."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404

from config.admin import is_scoped, managed_project_ids
from projects import services
from projects.models import Image, Label, Membership, Project, Role
from projects.permissions import project_permissions, projects_for_user

# Changelist parameters that are not filters.
_CHANGELIST_PARAMETERS = {"q", "o", "p", "e", "all", "_popup", "_to_field", "_changelist_filters"}


_BY_ID = {"", "exact", "in", "id", "id__exact", "id__in"}  # a project filter's lookups: by its id only


def _ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _an_id(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


def _for(form_class, request):
    """The form class, knowing who submits it (the services check what they may grant)."""
    return type(form_class.__name__, (form_class,), {"requester": request.user})


class ProjectScoped:
    """For a user who is not staff: this model's rows of the projects they manage (`project_field` leads from a row
    to its project; "pk" for projects themselves). Staff keep Django's model permissions."""

    project_field = "project"

    def managed(self, request) -> frozenset[int]:
        return managed_project_ids(request)

    def project_of(self, obj) -> int | None:
        return obj.pk if self.project_field == "pk" else getattr(obj, f"{self.project_field}_id")

    def in_scope(self, request, obj) -> bool:
        return obj is None or self.project_of(obj) in self.managed(request)

    def has_module_permission(self, request):
        return bool(self.managed(request)) if is_scoped(request) else super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        if is_scoped(request):
            return bool(self.managed(request)) and self.in_scope(request, obj)
        return super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return bool(self.managed(request)) if is_scoped(request) else super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        if is_scoped(request):
            return bool(self.managed(request)) and self.in_scope(request, obj)
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if is_scoped(request):
            return bool(self.managed(request)) and self.in_scope(request, obj)
        return super().has_delete_permission(request, obj)

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if not is_scoped(request):
            return rows
        return rows.filter(**{f"{self.project_field}__in": self.managed(request)})

    def get_object(self, request, object_id, from_field=None):
        """Another project's object, or none at all: the same 404, never admin's redirect that says which."""
        found = super().get_object(request, object_id, from_field)
        if found is None:
            raise Http404("No such object.")
        return found

    def get_list_filter(self, request):
        return [] if is_scoped(request) else super().get_list_filter(request)

    def get_autocomplete_fields(self, request):
        return [] if is_scoped(request) else super().get_autocomplete_fields(request)

    def get_search_fields(self, request):
        # Searching through a relation could match rows by another project's names.
        return (
            [f for f in super().get_search_fields(request) if "__" not in f]
            if is_scoped(request)
            else super().get_search_fields(request)
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if is_scoped(request) and db_field.name == "project":
            kwargs["queryset"] = Project.objects.filter(pk__in=self.managed(request))
        if is_scoped(request) and db_field.name == "role":
            kwargs["queryset"] = Role.objects.filter(Q(project__isnull=True) | Q(project__in=self.managed(request)))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def changelist_view(self, request, extra_context=None):
        if is_scoped(request):
            self._filters_check(request)
            chosen = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
            if chosen and self.get_queryset(request).filter(pk__in=chosen).count() != len(set(chosen)):
                raise Http404("No such object.")
        return super().changelist_view(request, extra_context)

    def _filters_check(self, request) -> None:
        """A filter that names a project (or, for projects, an id) they do not manage is a 404, not an empty list."""
        field = "id" if self.project_field == "pk" else self.project_field
        for key, value in request.GET.items():
            if key in _CHANGELIST_PARAMETERS:
                continue
            first, _, rest = key.partition("__")
            named = first in {field, f"{field}_id"} or (field == "id" and first == "pk")
            if not named or rest not in _BY_ID:
                raise DisallowedModelAdminLookup(f"Filtering by {key} is for staff.")  # a 400
            if not all(_an_id(v) in self.managed(request) for v in _ids(value)):
                raise Http404("No such project.")

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        if is_scoped(request) and request.method == "POST" and self.project_field != "pk":
            posted = request.POST.get("project")
            if posted and _an_id(posted) not in self.managed(request):
                raise PermissionDenied("You do not manage that project.")
        return super().changeform_view(request, object_id, form_url, extra_context)


# --- roles -----------------------------------------------------------------------------------


class RoleForm(forms.ModelForm):
    requester = None  # who submits it (_for)

    class Meta:
        model = Role
        fields = ["name", "description", "project", "permissions"]

    def clean(self):
        data = super().clean()
        if self.instance.pk is None or "name" in data:
            project = data["project"] if "project" in data else self.instance.project
            role = Role(pk=self.instance.pk, name=data.get("name", self.instance.name), project=project)
            permissions = data.get("permissions")
            ids = None if permissions is None else [p.pk for p in permissions]
            services.role_check(role=role, permission_ids=ids, by=self.requester)
        return data


@admin.register(Role)
class RoleAdmin(ProjectScoped, admin.ModelAdmin):
    form = RoleForm
    list_display = ["name", "project", "description", "is_builtin", "permission_count", "member_count"]
    filter_horizontal = ["permissions"]

    def get_queryset(self, request):
        rows = admin.ModelAdmin.get_queryset(self, request).select_related("project")
        members = Q()
        if is_scoped(request):  # the server-wide roles (read only) and their projects' own; members of those only
            rows = rows.filter(Q(project__isnull=True) | Q(project__in=self.managed(request)))
            members = Q(memberships__project__in=self.managed(request))
        return rows.annotate(
            permission_total=Count("permissions", distinct=True),
            member_total=Count("memberships", filter=members, distinct=True),
        )

    @admin.display(description="permissions", ordering="permission_total")
    def permission_count(self, role: Role) -> int:
        return role.permission_total

    @admin.display(description="members", ordering="member_total")
    def member_count(self, role: Role) -> int:
        return role.member_total

    def changelist_view(self, request, extra_context=None):
        # A bulk action names roles one may change: a server-wide role's users are all over the server.
        chosen = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        if is_scoped(request) and (chosen or request.POST.get("select_across") == "1"):
            own = Role.objects.filter(project__in=self.managed(request), pk__in=chosen)
            if request.POST.get("select_across") == "1" or own.count() != len(set(chosen)):
                raise Http404("No such role.")
        return super().changelist_view(request, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        if is_scoped(request) and not self._own(request, self.get_object(request, object_id)):
            raise PermissionDenied("The history of a server-wide role is for staff.")
        return super().history_view(request, object_id, extra_context)

    def in_scope(self, request, obj) -> bool:
        return obj is None or obj.project_id is None or obj.project_id in self.managed(request)

    def _own(self, request, obj) -> bool:
        """Whether a scoped user may change `obj`: a role of a project they manage, not a server-wide one."""
        return obj is None or (obj.project_id is not None and obj.project_id in self.managed(request))

    def has_change_permission(self, request, obj=None):
        if is_scoped(request):
            return bool(self.managed(request)) and self._own(request, obj)
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_builtin:
            return False
        if is_scoped(request):
            return bool(self.managed(request)) and self._own(request, obj)
        return super().has_delete_permission(request, obj)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = _for(super().get_form(request, obj, change, **kwargs), request)
        if is_scoped(request) and "project" in form.base_fields:
            form.base_fields["project"].required = True  # owners make roles of their projects only
            form.base_fields["project"].empty_label = None
        return form

    def get_readonly_fields(self, request, obj=None):
        # Code finds built-in roles by name, and the Owner must keep every permission.
        if obj is not None and obj.name == Role.OWNER and obj.is_builtin:
            return ["is_builtin", "name", "project", "permissions"]
        if obj is not None and obj.is_builtin:
            return ["is_builtin", "name", "project"]
        if obj is not None:
            return ["is_builtin", "project"]  # a role stays in its project, or server-wide
        return ["is_builtin"]

    def save_model(self, request, obj: Role, form, change):
        permissions = form.cleaned_data.get("permissions")
        ids = (
            [p.pk for p in permissions]
            if permissions is not None
            else list(obj.permissions.values_list("pk", flat=True))
        )
        try:
            services.role_save(role=obj, permission_ids=ids, by=request.user)
        except ValidationError as exc:  # the form checked it; a race lost is said, not a 500
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)

    def save_related(self, request, form, formsets, change):
        pass  # role_save set the permissions and brought every member up to date

    def delete_model(self, request, obj: Role):
        try:
            services.role_delete(role=obj, by=request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)

    def delete_queryset(self, request, queryset):
        for role in queryset:
            self.delete_model(request, role)

    def get_deleted_objects(self, objs, request):
        """A role in use cannot go: admin's confirmation names who holds it, instead of failing. (A scoped user
        deletes only their projects' roles, which only their projects' members hold.)"""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        used = [who for role in objs for who in services.role_in_use(role)]
        return deleted, counts, perms_needed, protected or used


# --- memberships -----------------------------------------------------------------------------


class MembershipForm(forms.ModelForm):
    """Refuses what the services would refuse, so admin shows a form error instead of failing."""

    requester = None  # who submits it (_for)

    class Meta:
        model = Membership
        fields = ["project", "user", "role"]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        if project is not None and data.get("user") and data.get("role"):
            services.membership_check(project=project, user=data["user"], role=data["role"])
            services.role_grantable_check(data["role"], project, self.requester)
        return data


class MemberByNameForm(MembershipForm):
    """For owners who are not staff: the member named by exact username or e-mail address, so that admin never
    lists the server's users."""

    member = forms.CharField(label="Username or e-mail", max_length=254)

    class Meta:
        model = Membership
        fields = ["project", "role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["member"].initial = self.instance.user.username
            self.fields["member"].disabled = True  # a membership's user stays; remove it and add another

    def clean(self):
        name = (self.cleaned_data.get("member") or "").strip()
        users = get_user_model().objects.filter(is_active=True)
        found = users.filter(username=name).first() or (
            users.filter(email__iexact=name).first() if "@" in name else None
        )
        if found is None and not self.instance.pk:
            raise ValidationError({"member": "No active user has exactly this username or e-mail address."})
        project = self.cleaned_data.get("project")
        if not self.instance.pk and project and Membership.objects.filter(project=project, user=found).exists():
            raise ValidationError({"member": f"{found} is a member already: change the role on their membership."})
        self.cleaned_data["user"] = found if not self.instance.pk else self.instance.user
        self.instance.user = self.cleaned_data["user"]
        return super().clean()


def _held(membership: Membership) -> str:
    """The permissions guardian grants the member on the project, as the app checks them."""
    if membership.pk is None:
        return "-"
    return ", ".join(sorted(project_permissions(membership.user, membership.project))) or "none"


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    extra = 1
    autocomplete_fields = ["user"]
    readonly_fields = ["permissions_held"]

    @admin.display(description="permissions (read only)")
    def permissions_held(self, membership: Membership) -> str:
        return _held(membership)

    def get_formset(self, request, obj=None, **kwargs):
        kwargs["form"] = _for(MemberByNameForm if is_scoped(request) else MembershipForm, request)
        if is_scoped(request):
            kwargs["fields"] = ["member", "role"]
        return super().get_formset(request, obj, **kwargs)

    def get_autocomplete_fields(self, request):
        return [] if is_scoped(request) else super().get_autocomplete_fields(request)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if is_scoped(request) and db_field.name == "role":
            kwargs["queryset"] = Role.objects.filter(
                Q(project__isnull=True) | Q(project__in=managed_project_ids(request))
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_view_permission(self, request, obj=None):
        return bool(managed_project_ids(request)) if is_scoped(request) else super().has_view_permission(request, obj)

    def _may(self, request, obj) -> bool:
        """A scoped user edits the members of the projects they manage (`obj`: the project)."""
        return obj is None or obj.pk in managed_project_ids(request)

    def has_add_permission(self, request, obj=None):
        return self._may(request, obj) if is_scoped(request) else super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._may(request, obj) if is_scoped(request) else super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._may(request, obj) if is_scoped(request) else super().has_delete_permission(request, obj)


class ScopedProjectForm(forms.ModelForm):
    """The project's admin form for its admins who are not staff: the owner is shown, not chosen."""

    class Meta:
        model = Project
        fields = ["name", "description", "sync_labels"]


class OwnershipForm(ScopedProjectForm):
    """And for its Owner, who may hand the project to one of its members."""

    transfer_to = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        label="Transfer ownership to",
        help_text="A member of this project. You stay on as an Admin.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            members = Membership.objects.filter(project=self.instance).exclude(user_id=self.instance.owner_id)
            self.fields["transfer_to"].queryset = (
                get_user_model().objects.filter(pk__in=members.values("user_id"), is_active=True).order_by("username")
            )


@admin.register(Project)
class ProjectAdmin(ProjectScoped, admin.ModelAdmin):
    project_field = "pk"
    list_display = ["name", "id", "owner", "created_at"]
    search_fields = ["name", "owner__username"]
    autocomplete_fields = ["owner"]
    inlines = [MembershipInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if is_scoped(request):
            owner = obj is not None and obj.owner_id == request.user.pk
            kwargs["form"] = OwnershipForm if owner else ScopedProjectForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if is_scoped(request):
            owner = obj is not None and obj.owner_id == request.user.pk
            return ["name", "description", "sync_labels", "owner", *(["transfer_to"] if owner else [])]
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if not is_scoped(request):
            return []
        may_change = obj is not None and "change_project" in project_permissions(request.user, obj)
        return ["owner"] if may_change else ["owner", "name", "description", "sync_labels"]

    def has_add_permission(self, request):
        return False if is_scoped(request) else super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False if is_scoped(request) else super().has_delete_permission(request, obj)

    def save_model(self, request, obj: Project, form, change):
        if not change:
            created = services.project_create(owner=obj.owner, name=obj.name, description=obj.description)
            obj.pk = created.pk
            return
        previous_owner_id = Project.objects.values_list("owner_id", flat=True).get(pk=obj.pk)
        new_owner = form.cleaned_data.get("transfer_to") or obj.owner
        obj.owner_id = previous_owner_id
        services.project_update(project=obj, name=obj.name, description=obj.description, sync_labels=obj.sync_labels)
        if new_owner.pk != previous_owner_id:
            if is_scoped(request) and request.user.pk != previous_owner_id:
                raise PermissionDenied("Only the project's owner can transfer ownership.")
            services.project_transfer_ownership(project=obj, new_owner=new_owner, by=request.user)
            obj.owner = new_owner
            request.ownership_moved = {previous_owner_id, new_owner.pk}  # their rows were set by the transfer

    @transaction.atomic
    def save_formset(self, request, form, formset, change):
        memberships = formset.save(commit=False)
        project = Project.objects.get(pk=form.instance.pk)
        moved = getattr(request, "ownership_moved", set())
        for membership in formset.deleted_objects:
            if membership.user_id not in moved:
                self._remove(request, membership)
        for membership in memberships:
            if membership.user_id in moved:
                continue  # ownership just moved; the transfer already set both roles
            try:
                services.membership_set(project=project, user=membership.user, role=membership.role, by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{membership.user}: {'; '.join(exc.messages)}", level=messages.ERROR)

    def delete_model(self, request, obj: Project):
        services.project_delete(project=obj)

    def delete_queryset(self, request, queryset):
        for project in queryset:
            services.project_delete(project=project)

    def _remove(self, request, membership: Membership) -> None:
        try:
            services.membership_remove(membership=membership, by=request.user)
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), level=messages.ERROR)


@admin.register(Membership)
class MembershipAdmin(ProjectScoped, admin.ModelAdmin):
    form = MembershipForm
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["project__name", "user__username", "user__email"]
    autocomplete_fields = ["project", "user"]
    readonly_fields = ["permissions_held"]

    @admin.display(description="permissions (read only)")
    def permissions_held(self, membership: Membership) -> str:
        return _held(membership)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = _for(MemberByNameForm if is_scoped(request) else MembershipForm, request)
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if is_scoped(request):
            return ["project", "member", "role", "permissions_held"]
        return ["project", "user", "role", "permissions_held"]

    def get_readonly_fields(self, request, obj=None):
        # A membership's project and user stay: remove it and add another.
        return ["permissions_held", "project", "user"] if obj is not None else ["permissions_held"]

    def save_model(self, request, obj: Membership, form, change):
        membership = services.membership_set(project=obj.project, user=obj.user, role=obj.role, by=request.user)
        obj.pk = membership.pk

    def has_delete_permission(self, request, obj=None):
        # The owner's membership goes only with a transfer of ownership.
        if obj is not None and obj.user_id == obj.project.owner_id:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj: Membership):
        services.membership_remove(membership=obj, by=request.user)

    def delete_queryset(self, request, queryset):
        for membership in queryset.select_related("project", "user"):
            try:
                services.membership_remove(membership=membership, by=request.user)
            except ValidationError as exc:
                self.message_user(request, f"{membership}: {'; '.join(exc.messages)}", level=messages.ERROR)


# --- labels ----------------------------------------------------------------------------------


class LabelForm(forms.ModelForm):
    class Meta:
        model = Label
        fields = ["project", "name", "color", "hotkey"]

    def clean(self):
        data = super().clean()
        project_id = data["project"].pk if data.get("project") else self.instance.project_id
        if project_id and data.get("name"):
            label = Label(
                pk=self.instance.pk, project_id=project_id, name=data["name"].strip(), hotkey=data.get("hotkey")
            )
            services.label_check_unique(label)
        return data


@admin.register(Label)
class LabelAdmin(ProjectScoped, admin.ModelAdmin):
    """Through the label services: names unique in the project, hotkeys free, and a deleted label's images get a
    new revision, so that an open labeler notices."""

    form = LabelForm
    list_display = ["name", "project", "color", "hotkey"]
    search_fields = ["name", "project__name"]

    def managed(self, request) -> frozenset[int]:
        """Of the projects they manage, those whose labels they may edit, as the app asks."""
        labels = projects_for_user(request.user, "manage_labels_project").values_list("pk", flat=True)
        return managed_project_ids(request) & frozenset(labels)

    def get_readonly_fields(self, request, obj=None):
        return ["project"] if obj is not None else []

    def save_model(self, request, obj: Label, form, change):
        data = form.cleaned_data  # checked by the form as the services check it
        if change:
            saved = services.label_update(
                label=Label.objects.get(pk=obj.pk), name=data["name"], color=data["color"], hotkey=data["hotkey"]
            )
        else:
            saved = services.label_create(
                project=data["project"], name=data["name"], color=data["color"], hotkey=data["hotkey"]
            )
        obj.pk = saved.pk

    def delete_model(self, request, obj: Label):
        services.label_delete(label=obj, confirm=True)  # admin's confirmation page is the confirmation

    def delete_queryset(self, request, queryset):
        for label in queryset:
            services.label_delete(label=label, confirm=True)


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
