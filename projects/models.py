"""Projects own everything else: labels, members (through roles) and images."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import models
from django.db.models import Q

# The project permissions, in the order the admin lists them. `view`, `change` and `delete`
# are Django's defaults; the rest are ours. Codenames are what access_project() takes.
PROJECT_PERMISSIONS = [
    ("view_project", "View the project, its images and labels"),
    ("change_project", "Rename and describe the project"),
    ("delete_project", "Delete the project"),
    ("annotate_project", "Label images"),
    ("review_project", "Review and accept labels and predictions"),
    ("replace_annotations_project", "Replace annotations in bulk (imports, scripts), other people's included"),
    ("manage_labels_project", "Create, edit and delete labels"),
    ("upload_project", "Upload images"),
    ("delete_images_project", "Delete images"),
    ("train_project", "Train models and predict"),
    ("export_project", "Export labels and data"),
    ("manage_members_project", "Add, remove and change members"),
]


class Project(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_projects")
    sync_labels = models.BooleanField(default=False, help_text="Object labels also label the image for classification.")
    seeme_dataset = models.ForeignKey(
        "SeemeDataset",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="versions",
        help_text="Set for a version of a dataset made through the SeeMe.ai SDK's API.",
    )
    seeme_version = models.CharField(max_length=100, blank=True, help_text="That version's name (SeeMe's).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        default_permissions = ("view", "change", "delete")
        permissions = [
            p for p in PROJECT_PERMISSIONS if p[0] not in {"view_project", "change_project", "delete_project"}
        ]

    def __str__(self) -> str:
        return self.name


class SeemeDataset(models.Model):
    """A dataset of the SeeMe.ai SDK's API (/api/v1/, docs/seeme.md): a named group of versions, each version one
    Sightline project (Project.seeme_dataset), so that what a script does there is what the web app shows."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    multi_label = models.BooleanField(default=False)
    content_type = models.CharField(max_length=20, default="images")
    default_splits = models.BooleanField(default=False)
    logo = models.FileField(upload_to="seeme/logos/", max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class RoleQuerySet(models.QuerySet):
    def with_permissions(self):
        return self.prefetch_related("permissions")

    def server_wide(self):
        """The roles every project offers: the five built-in ones, and any that staff add without a project."""
        return self.filter(project__isnull=True)

    def builtin(self, name: str) -> "Role":
        return self.get(project__isnull=True, name=name)

    def for_project(self, project: "Project | int"):
        """The roles a member of `project` can hold: the server-wide ones and the project's own."""
        return self.filter(Q(project__isnull=True) | Q(project=project))


class Role(models.Model):
    """A named set of project permissions. Built-in roles are seeded and server-wide; staff may add server-wide roles,
    and a project's owners roles of their own project (`project`), in admin."""

    OWNER = "Owner"
    ADMIN = "Admin"
    DEVELOPER = "Developer"
    LABELER = "Labeler"
    VIEWER = "Viewer"

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    project = models.ForeignKey(
        "Project",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="roles",
        help_text="Empty: offered in every project. Set: a role of this project only.",
    )
    permissions = models.ManyToManyField(
        Permission,
        blank=True,
        limit_choices_to={"content_type__app_label": "projects", "content_type__model": "project"},
    )
    is_builtin = models.BooleanField(default=False, editable=False)

    objects = RoleQuerySet.as_manager()

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["name"], condition=Q(project__isnull=True), name="role_unique_server_name"),
            models.UniqueConstraint(fields=["project", "name"], name="role_unique_project_name"),
            models.CheckConstraint(condition=Q(is_builtin=False) | Q(project__isnull=True), name="role_builtin_server"),
        ]

    def __str__(self) -> str:
        return self.name

    def codenames(self) -> set[str]:
        return {p.codename for p in self.permissions.all()}


class Membership(models.Model):
    """Who may do what in a project. The source of truth; guardian's object permissions follow it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "user__username"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique_user")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} in {self.project}"


class ProjectEvent(models.Model):
    """One change to who may do what in a project (members, roles, ownership, invitations), made in the app or in
    admin: the members page's history."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.message


class InvitationQuerySet(models.QuerySet):
    def for_user(self, user):
        """The invitations to `user`'s own e-mail address (none without one), with what a list of them shows."""
        if not user.is_authenticated or not user.email:
            return self.none()
        return self.filter(email__iexact=user.email).select_related("project", "role", "invited_by")


class Invitation(models.Model):
    """An offer of a role in a project, to whoever holds (or registers) this e-mail address. Nobody becomes a
    member without accepting; accepted or declined invitations are deleted."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(help_text="Stored lower-case; matched against the invitee's account e-mail.")
    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="invitations")
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "email"], name="invitation_unique_email")]

    def __str__(self) -> str:
        return f"{self.email} invited to {self.project} as {self.role}"


class Label(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    color = models.CharField(max_length=7, default="#e6194b")
    hotkey = models.PositiveSmallIntegerField(null=True, blank=True)
    keypoint_template = models.JSONField(
        default=list, blank=True, help_text="Keypoint names in order, placed on each new object with this label."
    )
    attributes = models.JSONField(
        default=list,
        blank=True,
        help_text="Attributes its objects carry: [{name, type, choices}] (projects/attributes.py).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="label_unique_name"),
            models.UniqueConstraint(
                fields=["project", "hotkey"], condition=Q(hotkey__isnull=False), name="label_unique_hotkey"
            ),
            models.CheckConstraint(
                condition=Q(hotkey__isnull=True) | Q(hotkey__gte=1, hotkey__lte=9), name="label_hotkey_1_to_9"
            ),
            models.CheckConstraint(condition=Q(color__regex=r"^#[0-9a-fA-F]{6}$"), name="label_color_hex"),
        ]

    def __str__(self) -> str:
        return self.name


class ImageQuerySet(models.QuerySet):
    def for_project(self, project: Project | int):
        return self.filter(project=project)


def image_upload_path(image: "Image", filename: str) -> str:
    return f"images/{image.project_id}/{image.sha256[:2]}/{image.sha256}{_suffix(filename)}"


def thumbnail_upload_path(image: "Image", filename: str) -> str:
    return f"thumbnails/{image.project_id}/{image.sha256[:2]}/{image.sha256}.webp"


def _suffix(filename: str) -> str:
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot > 0 else ""


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    name = models.CharField(max_length=255, help_text="The file name as uploaded.")
    description = models.TextField(blank=True, help_text="A note on the image (a SeeMe item's description).")
    # FileFields, not ImageFields: the service decodes each image once and records its size itself.
    file = models.FileField(upload_to=image_upload_path, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_upload_path, max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64, help_text="Of the uploaded bytes; a project holds each only once.")
    is_validation = models.BooleanField(default=False, help_text="Added to the user-defined validation set.")
    annotation_revision = models.PositiveIntegerField(
        default=0, help_text="Grows with every save of this image's annotations; a save names the one it read."
    )
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_bytes")]

    def __str__(self) -> str:
        return self.name


class Split(models.Model):
    """A named set of a project's images, as the SeeMe.ai SDK names them (an image may be in several). The split
    named "valid" is the validation set that training uses: its images are those marked `is_validation`, not rows
    of `images`."""

    VALID = "valid"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="splits")
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    images = models.ManyToManyField(Image, blank=True, related_name="splits")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="split_unique_name")]

    def __str__(self) -> str:
        return self.name


class PendingItem(models.Model):
    """A SeeMe item created before its image is uploaded. Its id is taken from the images' sequence, so that the
    image, once uploaded, has the same id as the item the script already holds."""

    id = models.BigIntegerField(primary_key=True)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pending_items")
    name = models.CharField(max_length=200, blank=True)
    extension = models.CharField(max_length=10, blank=True)
    description = models.TextField(blank=True)
    annotations = models.JSONField(default=list, blank=True, help_text="Applied when the image arrives.")
    split_ids = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project_id", "id"]

    def __str__(self) -> str:
        return f"{self.name}.{self.extension}"
