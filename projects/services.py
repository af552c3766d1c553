"""Every write to projects, labels and memberships. Image uploads live in projects/uploads.py."""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from guardian.models import UserObjectPermission

from accounts.models import User
from projects.attributes import definitions_clean
from projects.models import Image, Invitation, Label, Membership, Project, ProjectEvent, Role

LABEL_COLORS = [
    "#e6194b",
    "#3cb44b",
    "#ffe119",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#fabebe",
    "#008080",
    "#e6beff",
    "#9a6324",
    "#800000",
    "#aaffc3",
    "#808000",
]


# --- projects -------------------------------------------------------------------------------


@transaction.atomic
def project_create(*, owner: User, name: str, description: str = "") -> Project:
    project = Project(owner=owner, name=name.strip(), description=description)
    project.full_clean()
    project.save()
    _membership_save(project=project, user=owner, role=Role.objects.builtin(Role.OWNER))
    return project


def project_update(
    *, project: Project, name: str | None = None, description: str | None = None, sync_labels: bool | None = None
) -> Project:
    if sync_labels is not None:
        project.sync_labels = sync_labels
    if name is not None:
        project.name = name.strip()
    if description is not None:
        project.description = description
    project.full_clean()
    project.save()
    return project


@transaction.atomic
def project_delete(*, project: Project) -> None:
    """Delete the project and everything in it; files go once the transaction commits."""
    _permission_rows(project=project).delete()
    # Its members first: a membership protects its role, and the project's own roles go with the project.
    Membership.objects.filter(project=project).delete()
    project.delete()


@transaction.atomic
def project_transfer_ownership(*, project: Project, new_owner: User, by: User | None = None) -> Project:
    """Make `new_owner` the owner (joining them if needed); the previous owner stays on as Admin."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if not new_owner.is_active:
        raise ValidationError({"user": "Ownership cannot pass to a deactivated user."})
    if new_owner.pk == project.owner_id:
        return project
    previous = Membership.objects.get(project=project, user_id=project.owner_id)
    _membership_save(project=project, user=previous.user, role=Role.objects.builtin(Role.ADMIN))
    _membership_save(project=project, user=new_owner, role=Role.objects.builtin(Role.OWNER))
    project.owner = new_owner
    project.save(update_fields=["owner", "updated_at"])
    event_record(project=project, by=by, message=f"transferred ownership from {previous.user} to {new_owner}")
    return project


def event_record(*, project: Project, by: User | None, message: str) -> ProjectEvent:
    """Note a change to who may do what in `project` for its history (`by`: who made it; None for a script)."""
    return ProjectEvent.objects.create(project=project, actor=by, message=message[:500])


# --- memberships and the guardian rows that follow them ------------------------------------------


def membership_grant(*, project: Project, email: str, role: Role, by: User | None = None) -> Membership:
    """Share the project with an already registered user."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        raise ValidationError({"email": "No registered user has this email. Ask them to sign up first."})
    if Membership.objects.filter(project=project, user=user).exists():
        raise ValidationError({"email": f"{user.username} is already a member; change their role instead."})
    _check_assignable(role, project)
    role_grantable_check(role, project, by)
    with transaction.atomic():
        event_record(project=project, by=by, message=f"added {user} as {role}")
        return _membership_save(project=project, user=user, role=role)


INVITED = (
    "If {email} belongs to a Sightline account, or someone signs up with it, they will find the invitation on "
    "their home page and can accept or decline it."
)


def invitation_create(*, project: Project, email: str, role: Role, invited_by: User) -> Invitation:
    """Invite whoever holds this address. The answer is the same whether or not it is registered, or already a
    member (then nothing changes), so that sharing cannot be used to find out who has an account."""
    _check_assignable(role, project)
    role_grantable_check(role, project, invited_by)
    email = email.strip().lower()
    member = Membership.objects.filter(project=project, user__email__iexact=email).exists()
    invitation = Invitation(project=project, email=email, role=role, invited_by=invited_by)
    if member:
        return invitation  # unsaved: an invitation is never shown for someone who is already in
    with transaction.atomic():
        invitation, _ = Invitation.objects.update_or_create(
            project=project, email=email, defaults={"role": role, "invited_by": invited_by}
        )
        event_record(project=project, by=invited_by, message=f"invited {email} as {role}")
    return invitation


def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """The invitee joins with the invited role; the invitation is used up."""
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
        membership = Membership.objects.filter(project=invitation.project, user=user).first()
        if membership is None:
            membership = _membership_save(project=invitation.project, user=user, role=invitation.role)
            event_record(project=invitation.project, by=user, message=f"joined as {invitation.role} (invited)")
        invitation.delete()
    return membership


def invitation_delete(*, invitation: Invitation, by: User | None = None) -> None:
    """Declined by the invitee, or withdrawn by someone who manages the project's members."""
    with transaction.atomic():
        event_record(
            project=invitation.project, by=by, message=f"withdrew or declined the invitation of {invitation.email}"
        )
        invitation.delete()


def membership_change_role(*, membership: Membership, role: Role, by: User | None = None) -> Membership:
    if membership.user_id == _owner_id(membership.project):
        raise ValidationError({"role": "The owner's role cannot change; transfer ownership first."})
    _check_assignable(role, membership.project)
    role_grantable_check(role, membership.project, by)
    with transaction.atomic():
        if membership.role_id != role.pk:
            event_record(
                project=membership.project,
                by=by,
                message=f"changed {membership.user}'s role from {membership.role} to {role}",
            )
        return _membership_save(project=membership.project, user=membership.user, role=role)


def membership_check(*, project: Project, user: User, role: Role) -> None:
    """Raise unless `user` may hold `role` in `project`: the owner stays Owner, nobody else becomes one, and a role
    of another project is not offered here."""
    owner_id = _owner_id(project)
    if user.pk == owner_id and role.name != Role.OWNER:
        raise ValidationError({"role": "The owner's role cannot change; transfer ownership first."})
    if user.pk != owner_id:
        _check_assignable(role, project)


@transaction.atomic
def membership_set(*, project: Project, user: User, role: Role, by: User | None = None) -> Membership:
    """Admin's way in: any role of the project's but Owner for any user, guardian rows following."""
    membership_check(project=project, user=user, role=role)
    role_grantable_check(role, project, by)
    before = Membership.objects.filter(project=project, user=user).select_related("role").first()
    if before is None:
        event_record(project=project, by=by, message=f"added {user} as {role}")
    elif before.role_id != role.pk:
        event_record(project=project, by=by, message=f"changed {user}'s role from {before.role} to {role}")
    return _membership_save(project=project, user=user, role=role)


@transaction.atomic
def membership_remove(*, membership: Membership, by: User | None = None) -> None:
    if membership.user_id == _owner_id(membership.project):
        raise ValidationError({"user": "The owner cannot be removed; transfer ownership first."})
    _permission_rows(project=membership.project, user=membership.user).delete()
    event_record(project=membership.project, by=by, message=f"removed {membership.user} ({membership.role})")
    membership.delete()


# --- roles -----------------------------------------------------------------------------------


def role_check(*, role: Role, permission_ids: list[int] | None = None, by: User | None = None) -> None:
    """Raise unless `role` may be saved: its name is free where it is offered (a project role's is no server-wide
    role's), it holds project permissions only, and (`by`, who saves it, unless staff) none that `by` lacks in its
    project."""
    name = role.name.strip()
    same_name = Role.objects.exclude(pk=role.pk).filter(name__iexact=name)
    if role.project_id is not None and same_name.filter(project__isnull=True).exists():
        raise ValidationError({"name": f"{role.name!r} is a role of every project already; choose another name."})
    if same_name.filter(project_id=role.project_id).exists():
        raise ValidationError({"name": f"A role named {name!r} exists already."})
    if permission_ids is not None:
        allowed = {p.pk: p.codename for p in project_permission_objects()}
        if set(permission_ids) - set(allowed):
            raise ValidationError({"permissions": "A role holds project permissions only."})
        if role.project_id is not None:
            _check_grantable_codenames({allowed[pk] for pk in permission_ids}, role.project, by, "permissions")


@transaction.atomic
def role_save(*, role: Role, permission_ids: list[int], by: User | None = None) -> Role:
    """Create or change a role and its permissions; its members hold the new permissions at once."""
    role.name = role.name.strip()
    role_check(role=role, permission_ids=permission_ids, by=by)
    created = role.pk is None
    before = set() if created else set(role.permissions.values_list("codename", flat=True))
    role.full_clean()
    role.save()
    role.permissions.set(permission_ids)
    after = set(role.permissions.values_list("codename", flat=True))
    role_memberships_resync(role=role)
    if role.project_id is not None and (created or before != after):
        what = "created" if created else "changed"
        granted = ", ".join(sorted(after)) or "no permission"
        event_record(project=role.project, by=by, message=f"{what} the role {role}: {granted}")
    return role


def role_in_use(role: Role) -> list[str]:
    """Who holds `role` (members, as "user in project"), and who is invited to it; empty when it may be deleted."""
    members = [f"{m.user} in {m.project}" for m in role.memberships.select_related("user", "project")]
    return members + [f"{i.email} (invited to {i.project})" for i in role.invitations.select_related("project")]


def _owner_id(project: Project) -> int:
    """The project's owner as stored now (an object in hand may predate a transfer)."""
    return Project.objects.values_list("owner_id", flat=True).get(pk=project.pk)


def role_grantable_check(role: Role, project: Project, by: User | None) -> None:
    """Nobody gives a role holding more than they hold in the project themselves (an Admin, who may not delete the
    project, gives no role that may); staff and scripts (`by` None) may."""
    _check_grantable_codenames(role.codenames(), project, by)


def _check_grantable_codenames(codenames: set[str], project: Project, by: User | None, field: str = "role") -> None:
    if by is None or by.is_staff or by.is_superuser:
        return
    from projects.permissions import project_permissions

    beyond = sorted(codenames - project_permissions(by, project))
    if beyond:
        raise ValidationError(
            {field: f"You cannot grant what you do not hold in this project yourself: {', '.join(beyond)}."}
        )


@transaction.atomic
def role_delete(*, role: Role, by: User | None = None) -> None:
    if role.is_builtin:
        raise ValidationError({"role": "Built-in roles cannot be deleted."})
    used = role_in_use(role)
    if used:
        raise ValidationError(
            {"role": f"The role {role} is in use by {', '.join(used)}: give them another role first."}
        )
    if role.project_id is not None:
        event_record(project=role.project, by=by, message=f"deleted the role {role}")
    role.delete()


@transaction.atomic
def role_memberships_resync(*, role: Role) -> int:
    """After a role's permissions change, bring every member with that role up to date."""
    memberships = list(Membership.objects.filter(role=role).select_related("project", "user"))
    for membership in memberships:
        _permissions_sync(membership)
    return len(memberships)


def _check_assignable(role: Role, project: Project) -> None:
    if role.name == Role.OWNER and role.project_id is None:
        raise ValidationError({"role": "A project has one owner; use transfer ownership."})
    if role.project_id not in (None, project.pk):
        raise ValidationError({"role": "That role belongs to another project."})


def _membership_save(*, project: Project, user: User, role: Role) -> Membership:
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    _permissions_sync(membership)
    return membership


def _permission_rows(*, project: Project | None = None, user: User | None = None):
    rows = UserObjectPermission.objects.filter(content_type=ContentType.objects.get_for_model(Project))
    rows = rows if project is None else rows.filter(object_pk=str(project.pk))
    return rows if user is None else rows.filter(user=user)


def _permissions_sync(membership: Membership) -> None:
    """Make guardian's rows for this user and project exactly the role's permissions."""
    wanted = set(membership.role.permissions.values_list("pk", flat=True))
    rows = _permission_rows(project=membership.project, user=membership.user)
    have = set(rows.values_list("permission_id", flat=True))
    rows.filter(permission_id__in=have - wanted).delete()
    content_type = ContentType.objects.get_for_model(Project)
    UserObjectPermission.objects.bulk_create(
        UserObjectPermission(
            user=membership.user, permission_id=pk, content_type=content_type, object_pk=str(membership.project.pk)
        )
        for pk in wanted - have
    )


# --- drift: guardian's rows against memberships and roles -------------------------------------


def permissions_drift() -> list[dict]:
    """Every difference between guardian's project permission rows and what memberships and roles grant: rows a
    member lacks (`missing`), rows no membership explains (`extra`). Each: user, project id, codename, what."""
    content_type = ContentType.objects.get_for_model(Project)
    granted: set[tuple[int, str, int]] = set()
    for user_id, project_id, permission_id in Membership.objects.filter(
        role__permissions__content_type=content_type
    ).values_list("user_id", "project_id", "role__permissions"):
        granted.add((user_id, str(project_id), permission_id))
    rows = set(
        UserObjectPermission.objects.filter(content_type=content_type).values_list(
            "user_id", "object_pk", "permission_id"
        )
    )
    codenames = dict(Permission.objects.filter(content_type=content_type).values_list("pk", "codename"))
    found = [("missing", row) for row in granted - rows] + [("extra", row) for row in rows - granted]
    return [
        {"what": what, "user_id": user_id, "project_id": project_pk, "codename": codenames.get(permission_id, "?")}
        for what, (user_id, project_pk, permission_id) in sorted(
            found, key=lambda item: (item[1][1], item[1][0], item[0])
        )
    ]


@transaction.atomic
def permissions_repair() -> int:
    """Make guardian's project rows exactly what memberships and roles grant; the rows changed."""
    drift = permissions_drift()
    content_type = ContentType.objects.get_for_model(Project)
    ids = {
        codename: pk
        for pk, codename in Permission.objects.filter(content_type=content_type).values_list("pk", "codename")
    }
    for item in drift:
        key = {"user_id": item["user_id"], "object_pk": item["project_id"], "permission_id": ids[item["codename"]]}
        if item["what"] == "extra":
            UserObjectPermission.objects.filter(content_type=content_type, **key).delete()
        else:
            UserObjectPermission.objects.create(content_type=content_type, **key)
    return len(drift)


def project_permission_objects() -> list[Permission]:
    """The permissions a role can hold, for admin and the API."""
    return list(Permission.objects.filter(content_type=ContentType.objects.get_for_model(Project)).order_by("codename"))


# --- labels ----------------------------------------------------------------------------------


def label_create(
    *,
    project: Project,
    name: str,
    color: str | None = None,
    hotkey=...,
    keypoint_template: list[str] | None = None,
    attributes: list[dict] | None = None,
    description: str = "",
) -> Label:
    """A new label; unless chosen, it takes the next palette colour and the next free hotkey (1-9, or none)."""
    name = name.strip()
    label = Label(
        project=project,
        name=name,
        description=description,
        color=color or label_next_color(project=project),
        hotkey=label_next_hotkey(project=project) if hotkey is ... else hotkey,
        keypoint_template=_keypoint_template(keypoint_template or []),
        attributes=definitions_clean(attributes or []),
    )
    label_check_unique(label)
    label.full_clean()
    label.save()
    return label


def label_check_unique(label: Label) -> None:
    """Say which field clashes, in words, before the database constraints would."""
    others = Label.objects.filter(project_id=label.project_id).exclude(pk=label.pk)
    if others.filter(name=label.name).exists():
        raise ValidationError({"name": f"A label named {label.name!r} already exists in this project."})
    holder = others.filter(hotkey=label.hotkey).first() if label.hotkey is not None else None
    if holder is not None:
        raise ValidationError({"hotkey": f"Hotkey {label.hotkey} already belongs to label {holder.name!r}."})


def _keypoint_template(names: list[str]) -> list[str]:
    cleaned = [n.strip() for n in names]
    if any(not n for n in cleaned):
        raise ValidationError({"keypoint_template": "Keypoint names may not be blank."})
    if len(set(cleaned)) != len(cleaned):
        raise ValidationError({"keypoint_template": "Keypoint names must differ from each other."})
    return cleaned


def label_next_color(*, project: Project) -> str:
    """The palette colour a new label of this project gets unless one is chosen: the next one, skipping
    colours other labels already have, so labels made one after another (by hand or by an import) differ."""
    used = {c.lower() for c in project.labels.values_list("color", flat=True)}
    start = len(used)
    for step in range(len(LABEL_COLORS)):
        color = LABEL_COLORS[(start + step) % len(LABEL_COLORS)]
        if color.lower() not in used:
            return color
    return LABEL_COLORS[start % len(LABEL_COLORS)]


def label_next_hotkey(*, project: Project) -> int | None:
    """The lowest hotkey 1-9 no label of the project holds, or None when all nine are taken."""
    taken = set(project.labels.exclude(hotkey=None).values_list("hotkey", flat=True))
    return next((key for key in range(1, 10) if key not in taken), None)


@transaction.atomic
def label_update(
    *,
    label: Label,
    name: str | None = None,
    color: str | None = None,
    hotkey=...,
    keypoint_template=None,
    attributes: list[dict] | None = None,
    description: str | None = None,
) -> Label:
    """Rename, recolour or rebind a label; `hotkey=None` unbinds, leaving it out keeps it."""
    redefined = attributes is not None and definitions_clean(attributes) != label.attributes
    if attributes is not None:
        label.attributes = definitions_clean(attributes)
    if keypoint_template is not None:
        label.keypoint_template = _keypoint_template(keypoint_template)
    if name is not None:
        label.name = name.strip()
    if color is not None:
        label.color = color
    if description is not None:
        label.description = description
    if hotkey is not ...:
        label.hotkey = hotkey
    label_check_unique(label)
    label.full_clean()
    label.save()
    if redefined:
        _attribute_values_fit(label)
    return label


def _attribute_values_fit(label: Label) -> None:
    """After a label's attributes are redefined, its objects' values that no longer fit are cleared
    (and their images get a new revision), so no stored object is left that a save would refuse."""
    from django.db.models import F

    from annotations.models import Annotation
    from projects.attributes import value_problem

    definitions = {d["name"]: d for d in label.attributes}
    changed = []
    for annotation in (
        Annotation.objects.filter(label=label).exclude(attributes={}).only("id", "image_id", "attributes")
    ):
        kept = {
            name: value
            for name, value in annotation.attributes.items()
            if name not in definitions or value_problem(definitions[name], value) is None
        }
        if kept != annotation.attributes:
            annotation.attributes = kept
            changed.append(annotation)
    Annotation.objects.bulk_update(changed, ["attributes"], batch_size=1000)
    images = {a.image_id for a in changed}
    Image.objects.filter(pk__in=images).update(annotation_revision=F("annotation_revision") + 1)


class LabelInUse(Exception):
    """Deleting this label would delete annotations; the caller must confirm."""

    def __init__(self, *, annotations: int, classifications: int):
        self.annotations, self.classifications = annotations, classifications
        super().__init__(
            f"{annotations} object{'s' if annotations != 1 else ''} and {classifications} image "
            f"classification{'s' if classifications != 1 else ''} use this label and would be deleted with it."
        )


@transaction.atomic
def label_delete(*, label: Label, confirm: bool = False) -> None:
    """Delete a label; when annotations use it, only with `confirm`, and their images' revisions move on."""
    from annotations.models import Annotation, Classification

    annotations = Annotation.objects.filter(label=label)
    classifications = Classification.objects.filter(label=label)
    counts = {"annotations": annotations.count(), "classifications": classifications.count()}
    if any(counts.values()) and not confirm:
        raise LabelInUse(**counts)
    touched = set(annotations.values_list("image_id", flat=True)) | set(
        classifications.values_list("image_id", flat=True)
    )
    Image.objects.filter(pk__in=touched).update(annotation_revision=F("annotation_revision") + 1)
    label.delete()


def labels_validate(*, project: Project, names: list[str]) -> list[str]:
    """The cleaned, distinct names, each one an existing label or a valid new one; creates nothing."""
    cleaned = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    existing = set(Label.objects.filter(project=project, name__in=cleaned).values_list("name", flat=True))
    for name in cleaned:
        if name not in existing:
            Label(project=project, name=name, color=LABEL_COLORS[0]).full_clean(exclude=["project"])
    return cleaned


@transaction.atomic
def labels_get_or_create(*, project: Project, names: list[str]) -> list[Label]:
    """The project's labels with these names, in order, creating the ones that do not exist yet."""
    labels = []
    for name in dict.fromkeys(n.strip() for n in names if n.strip()):
        label = Label.objects.filter(project=project, name=name).first()
        labels.append(label or label_create(project=project, name=name))
    return labels


# --- images (uploads are in projects/uploads.py) ----------------------------------------------


def images_delete(*, project: Project, image_ids: list[int]) -> int:
    """Delete these images of the project; ids from elsewhere are ignored. Files go after commit."""
    with transaction.atomic():
        _, per_model = Image.objects.for_project(project).filter(pk__in=image_ids).delete()
    return per_model.get("projects.Image", 0)


def images_set_validation(*, project: Project, image_ids: list[int], is_validation: bool) -> int:
    """Add images to, or take them out of, the user-defined validation set; ids from elsewhere are ignored."""
    return Image.objects.for_project(project).filter(pk__in=image_ids).update(is_validation=is_validation)
