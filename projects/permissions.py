"""The one place that answers "may this user do this in this project".

A project that a user may not see is answered exactly like one that does not exist (404),
so ids leak nothing. A user who sees the project but lacks the permission gets 403.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from guardian.core import ObjectPermissionChecker
from guardian.shortcuts import get_objects_for_user

from projects.models import PROJECT_PERMISSIONS, Image, Project

NOT_FOUND = "No such project."


def access_project(user, project_id: int, perm: str | tuple[str, ...] = "view_project") -> Project:
    """Return the project if `user` holds `perm` (or any of a tuple of them) on it; 404 if they may not see it, 403
    if they see it only."""
    if not user.is_authenticated:
        raise Http404(NOT_FOUND)
    if not user.is_active:
        raise Http404(NOT_FOUND)
    project = Project.objects.filter(pk=project_id).select_related("owner").first()
    if project is None:
        raise Http404(NOT_FOUND)
    checker = ObjectPermissionChecker(user)
    if not checker.has_perm("view_project", project):
        raise Http404(NOT_FOUND)
    wanted = (perm,) if isinstance(perm, str) else perm
    if not any(checker.has_perm(one, project) for one in wanted):
        raise PermissionDenied(f"Your role in this project does not allow this: {' or '.join(map(_in_words, wanted))}.")
    return project


def _in_words(perm: str) -> str:
    """What a permission allows, as the admin describes it ("label images"), never its codename."""
    description = dict(PROJECT_PERMISSIONS).get(perm, perm.removesuffix("_project").replace("_", " "))
    return description[0].lower() + description[1:]


def access_child(user, child, perm: str | tuple[str, ...], missing: str, *, project_id: int | None = None):
    """Return `child` (anything with a project_id) if `user` holds `perm` on its project.

    A missing child, one in a project they may not see, and (given `project_id`, the project the URL
    names) one of another project get the same 404, with `missing` as its message.
    """
    if child is None or (project_id is not None and child.project_id != project_id):
        raise Http404(missing)
    try:
        child.project = access_project(user, child.project_id, perm)
    except Http404:
        raise Http404(missing) from None
    return child


def access_image(user, image_id: int, perm: str | tuple[str, ...] = "view_project") -> Image:
    """Return the image if `user` holds `perm` on its project; 404 for an image they may not see."""
    return access_child(user, Image.objects.filter(pk=image_id).first(), perm, "No such image.")


def projects_for_user(user, perm: str = "view_project") -> QuerySet[Project]:
    """The projects in which `user` holds `perm` (all of them for a superuser)."""
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    return get_objects_for_user(user, f"projects.{perm}", klass=Project, accept_global_perms=False)


def project_permissions(user, project: Project) -> set[str]:
    """The codenames `user` holds on `project`, for showing only the actions they may take."""
    return set(ObjectPermissionChecker(user).get_perms(project))


def require_owner(user, project: Project) -> None:
    """Only the owner (or a superuser) hands a project to someone else."""
    if project.owner_id == user.pk:
        return
    if user.is_superuser:
        return
    raise PermissionDenied("Only the project's owner can transfer ownership.")


def invitation_for_invitee(user, invitation_id: int):
    """An invitation to `user`'s own e-mail address; anyone else's is a 404, as a missing one is."""
    from projects.models import Invitation

    found = Invitation.objects.for_user(user).filter(pk=invitation_id).first() if user.is_active else None
    if found is None:
        raise Http404("No such invitation.")
    return found


def invitation_for_manager(user, project_id: int, invitation_id: int):
    """A pending invitation of a project whose members `user` manages (404 / 403 as for the project)."""
    from projects.models import Invitation

    project = access_project(user, project_id, "manage_members_project")
    invitation = Invitation.objects.filter(pk=invitation_id, project=project).first()
    if invitation is None:
        raise Http404("No such invitation.")
    return invitation
