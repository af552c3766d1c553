"""Project pages: the list, the image grid (htmx paging), settings with labels and members."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from annotations import filters
from annotations.services import classifications_set_many
from config.flash import flash_errors
from projects import services
from projects.forms import LabelForm, MemberForm, ProjectCreateForm, ProjectForm, RoleForm
from projects.models import Image, Invitation, Role
from projects.permissions import (
    access_project,
    invitation_for_invitee,
    invitation_for_manager,
    project_permissions,
    projects_for_user,
    require_owner,
)
from projects.selectors import ids_parse, label_get, label_usage, membership_get, projects_overview

GRID_PAGE_SIZE = 60
# How the grid sorts: the menu's value -> the order. Status is the requesting user's.
SORTS = {
    "newest": ("-id",),
    "oldest": ("id",),
    "name": ("name", "id"),
    "name-desc": ("-name", "-id"),
    "status": ("my_status", "-id"),
}


def _grid_images(request, project, chosen: dict[str, str]):
    """The project's images that the grid's filters match (ValidationError for a bad filter)."""
    images = Image.objects.for_project(project)
    return filters.images_filter(images, project=project, user=request.user, **chosen)


def _selected_ids(request, project) -> list[int]:
    """The grid's selection: the ticked images, or every image the filter matches ("select all")."""
    if request.POST.get("all_matching") == "1":
        chosen = {key: request.POST.get(key, "").strip() for key in filters.FILTER_KEYS}
        try:
            return list(_grid_images(request, project, chosen).values_list("pk", flat=True))
        except ValidationError:
            return []
    return ids_parse(request.POST.getlist("image"))


@login_required
@require_http_methods(["GET", "POST"])
def project_list(request):
    form = ProjectCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(owner=request.user, **form.cleaned_data)
        except ValidationError as exc:
            flash_errors(request, exc)
        else:
            return redirect("projects:detail", project_id=project.id)
    projects = projects_overview(projects_for_user(request.user).select_related("owner").order_by("-created_at", "-id"))
    context = {"projects": projects, "form": form, "invitations": Invitation.objects.for_user(request.user)}
    return render(request, "projects/project_list.html", context)


@login_required
@require_safe
def project_detail(request, project_id: int):
    """The image grid. An htmx request for another page gets only the grid partial."""
    project = access_project(request.user, project_id)
    chosen = {key: request.GET.get(key, "").strip() for key in filters.FILTER_KEYS}
    sort = request.GET.get("sort", "newest") if request.GET.get("sort") in SORTS else "newest"
    filter_error = None
    try:
        images = _grid_images(request, project, chosen)
    except ValidationError as exc:
        filter_error = " ".join(exc.messages)
        images = Image.objects.none()
    if sort == "status":
        images = images.annotate(my_status=filters.status_rank(request.user))
    images = images.only("id", "name", "width", "height", "is_validation").prefetch_related("classifications__label")
    page = Paginator(images.order_by(*SORTS[sort]), GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    query = {**{k: v for k, v in chosen.items() if v}, **({"sort": sort} if sort != "newest" else {})}
    context = {
        "project": project,
        "page": page,
        "perms": project_permissions(request.user, project),
        "filters": chosen,
        "sort": sort,
        "sorts": list(SORTS),
        "filter_query": urlencode(query),
        "filter_error": filter_error,
        "types": filters.TYPES,
        "statuses": filters.STATUSES,
        "labels": project.labels.all(),
        "has_images": Image.objects.for_project(project).exists(),
    }
    if request.htmx:
        return render(request, "projects/project_detail.html#grid", context)
    return render(request, "projects/project_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def label_selected(request, project_id: int):
    """Open the labeler on the selected images only, or on all of them when none is selected (spec 000).

    The grid posts its selection (so no token lands in a URL); "select all" walks the filter instead of ids.
    """
    project = access_project(request.user, project_id)
    images = Image.objects.for_project(project)
    walk = {}
    if request.POST.get("all_matching") == "1":
        posted = {key: request.POST.get(key, "").strip() for key in filters.FILTER_KEYS}
        walk = {key: value for key, value in posted.items() if value}
        ids = _selected_ids(request, project)
    else:
        ids = sorted(
            set(
                _selected_ids(request, project) if request.method == "POST" else ids_parse(request.GET.getlist("image"))
            )
        )
        if ids:
            walk = {"ids": ",".join(map(str, ids))}
    first = (images.filter(pk__in=ids) if ids else images).order_by("-id").first()
    if first is None:
        messages.error(request, "There is no image to label yet.")
        return redirect("projects:detail", project_id=project.id)
    url = reverse("annotations:labeler", args=[project.id, first.pk])
    return redirect(f"{url}?{urlencode(walk, safe=',')}" if walk else url)


@login_required
@require_POST
def images_delete(request, project_id: int):
    project = access_project(request.user, project_id, "delete_images_project")
    ids = _selected_ids(request, project)
    deleted = services.images_delete(project=project, image_ids=ids)
    messages.success(request, f"Deleted {deleted} image{'s' if deleted != 1 else ''}.")
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_POST
def images_label(request, project_id: int):
    """The grid's "Assign label…" and "Remove label…" for the selected images."""
    project = access_project(request.user, project_id, "annotate_project")
    label = project.labels.filter(pk__in=ids_parse([request.POST.get("label", "")])).first()
    if label is None:
        messages.error(request, "Choose a label of this project.")
        return redirect("projects:detail", project_id=project.id)
    present = request.POST.get("operation") != "remove"
    changed = classifications_set_many(
        project=project, image_ids=_selected_ids(request, project), label=label, present=present
    )
    verb = "Labeled" if present else f"Took {label.name} off"
    what = f" {label.name}" if present else ""
    messages.success(request, f"{verb} {changed} image{'s' if changed != 1 else ''}{what}.")
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_POST
def images_predictions_accept(request, project_id: int):
    """The grid's "Accept predictions": on the selected images, every prediction scoring at least the threshold
    becomes an annotation."""
    from training.services.assisting import predictions_accept_many

    project = access_project(request.user, project_id, "annotate_project")
    try:
        threshold = float(request.POST.get("threshold", ""))
    except ValueError:
        threshold = -1.0
    try:
        done = predictions_accept_many(
            project=project, user=request.user, image_ids=_selected_ids(request, project), threshold=threshold
        )
    except ValidationError as exc:
        flash_errors(request, exc)
        return redirect("projects:detail", project_id=project.id)
    messages.success(
        request,
        f"Accepted {done['accepted']} prediction{'s' if done['accepted'] != 1 else ''} scoring at least "
        f"{threshold:g} on {done['images']} image{'s' if done['images'] != 1 else ''}."
        + (f" {done['skipped']} skipped: saved meanwhile, or no longer valid." if done["skipped"] else ""),
    )
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_POST
def images_validation(request, project_id: int):
    """The grid's 'Add to validation set' and 'Remove from validation set' for the selected images."""
    project = access_project(request.user, project_id, "annotate_project")
    ids = _selected_ids(request, project)
    adding = request.POST.get("validation") == "add"
    changed = services.images_set_validation(project=project, image_ids=ids, is_validation=adding)
    verb = "Added" if adding else "Removed"
    messages.success(
        request, f"{verb} {changed} image{'s' if changed != 1 else ''} {'to' if adding else 'from'} the validation set."
    )
    return redirect("projects:detail", project_id=project.id)


@login_required
@require_http_methods(["GET", "POST"])
def project_settings(request, project_id: int):
    project = access_project(request.user, project_id)
    perms = project_permissions(request.user, project)
    form = ProjectForm(request.POST or None, instance=project)
    if request.method == "POST":
        project = access_project(request.user, project_id, "change_project")
        if form.is_valid():
            try:
                services.project_update(project=project, **form.cleaned_data)
            except ValidationError as exc:
                flash_errors(request, exc)
            else:
                messages.success(request, "Project saved.")
                return redirect("projects:settings", project_id=project.id)
    context = {
        "project": project,
        "form": form,
        "perms": perms,
        "labels": label_usage(project=project),
        "label_form": LabelForm(
            initial={
                "color": services.label_next_color(project=project),
                "hotkey": services.label_next_hotkey(project=project),
            }
        ),
        "members": project.memberships.select_related("user", "role"),
        "invitations": project.invitations.select_related("role", "invited_by")
        if "manage_members_project" in perms
        else [],
        "member_form": MemberForm(project=project, initial={"role": Role.objects.builtin(Role.LABELER)}),
        "role_form": RoleForm(project=project),
        "events": project.events.select_related("actor")[:50] if "manage_members_project" in perms else [],
    }
    return render(request, "projects/project_settings.html", context)


@login_required
@require_POST
def project_delete(request, project_id: int):
    project = access_project(request.user, project_id, "delete_project")
    if request.POST.get("confirm_name") != project.name:
        messages.error(request, "Type the project's name to confirm deleting it.")
        return redirect("projects:settings", project_id=project.id)
    services.project_delete(project=project)
    messages.success(request, f"Deleted project {project.name}.")
    return redirect("projects:list")


@login_required
@require_POST
def label_create(request, project_id: int):
    project = access_project(request.user, project_id, "manage_labels_project")
    _label_save(request, lambda fields: services.label_create(project=project, **fields))
    return redirect("projects:settings", project_id=project.id)


@login_required
@require_POST
def label_edit(request, project_id: int, label_id: int):
    label = label_get(user=request.user, project_id=project_id, label_id=label_id, perm="manage_labels_project")
    saved = _label_save(request, lambda fields: services.label_update(label=label, **fields))
    if saved:
        messages.success(request, f"Saved label {saved.name}.")
    return redirect("projects:settings", project_id=project_id)


def _label_save(request, save):
    """Read the settings page's label form and hand its fields to `save`; errors become messages."""
    form = LabelForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Check the label: " + "; ".join(e for errs in form.errors.values() for e in errs))
        return None
    data = form.cleaned_data
    fields = {
        "name": data["name"],
        "color": data["color"] or None,
        "hotkey": data["hotkey"],
        "keypoint_template": data["keypoints"],
        "attributes": data["attributes"],
    }
    try:
        return save(fields)
    except ValidationError as exc:
        flash_errors(request, exc)
        return None


@login_required
@require_POST
def label_delete(request, project_id: int, label_id: int):
    label = label_get(user=request.user, project_id=project_id, label_id=label_id, perm="manage_labels_project")
    try:
        services.label_delete(label=label, confirm=request.POST.get("confirm") == "1")
    except services.LabelInUse as in_use:
        messages.error(request, f"{in_use} Confirm to delete label {label.name} with them.")
        return redirect("projects:settings", project_id=project_id)
    messages.success(request, f"Deleted label {label.name}.")
    return redirect("projects:settings", project_id=project_id)


@login_required
@require_POST
def member_add(request, project_id: int):
    project = access_project(request.user, project_id, "manage_members_project")
    form = MemberForm(request.POST, project=project)
    if form.is_valid():
        try:
            services.invitation_create(project=project, invited_by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            flash_errors(request, exc)
        else:
            messages.success(request, services.INVITED.format(email=form.cleaned_data["email"]))
    else:
        messages.error(request, "Give an e-mail address and a role.")
    return redirect("projects:settings", project_id=project.id)


@login_required
@require_POST
def invitation_withdraw(request, project_id: int, invitation_id: int):
    invitation = invitation_for_manager(request.user, project_id, invitation_id)
    services.invitation_delete(invitation=invitation, by=request.user)
    messages.success(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("projects:settings", project_id=project_id)


@login_required
@require_POST
def invitation_answer(request, invitation_id: int, answer: str):
    """Accept or decline an invitation from the home page."""
    if answer not in {"accept", "decline"}:
        raise Http404("Answer accept or decline.")
    invitation = invitation_for_invitee(request.user, invitation_id)
    if answer == "accept":
        services.invitation_accept(invitation=invitation, user=request.user)
        messages.success(request, f"You joined {invitation.project.name} as {invitation.role.name}.")
        return redirect("projects:detail", project_id=invitation.project_id)
    services.invitation_delete(invitation=invitation, by=request.user)
    messages.success(request, f"You declined the invitation to {invitation.project.name}.")
    return redirect("projects:list")


def _membership(request, project_id: int, user_id: int):
    return membership_get(user=request.user, project_id=project_id, member_id=user_id, perm="manage_members_project")


@login_required
@require_POST
def member_change(request, project_id: int, user_id: int):
    membership = _membership(request, project_id, user_id)
    form = RoleForm(request.POST, project=membership.project)
    if form.is_valid():
        try:
            services.membership_change_role(membership=membership, role=form.cleaned_data["role"], by=request.user)
        except ValidationError as exc:
            flash_errors(request, exc)
        else:
            messages.success(request, f"{membership.user.username} is now {form.cleaned_data['role']}.")
    else:
        messages.error(request, "Choose one of the roles offered.")
    return redirect("projects:settings", project_id=project_id)


@login_required
@require_POST
def member_remove(request, project_id: int, user_id: int):
    membership = _membership(request, project_id, user_id)
    try:
        services.membership_remove(membership=membership, by=request.user)
    except ValidationError as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"Removed {membership.user.username} from the project.")
    return redirect("projects:settings", project_id=project_id)


@login_required
@require_POST
def ownership_transfer(request, project_id: int, user_id: int):
    membership = _membership(request, project_id, user_id)
    require_owner(request.user, membership.project)
    try:
        services.project_transfer_ownership(project=membership.project, new_owner=membership.user, by=request.user)
    except ValidationError as exc:
        flash_errors(request, exc)
    else:
        messages.success(request, f"{membership.user.username} now owns the project; you are an Admin.")
    return redirect("projects:settings", project_id=project_id)
