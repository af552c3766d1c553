"""Seed the built-in roles: the spec's Owner, Admin, Developer and Labeler, plus a read-only Viewer."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ALL = [
    "view_project",
    "change_project",
    "delete_project",
    "annotate_project",
    "review_project",
    "replace_annotations_project",
    "manage_labels_project",
    "upload_project",
    "delete_images_project",
    "train_project",
    "export_project",
    "manage_members_project",
]
ROLES = {
    "Owner": ("Everything, including deleting the project and handing it on.", ALL),
    "Admin": (
        "Everything but deleting the project or transferring ownership.",
        [p for p in ALL if p != "delete_project"],
    ),
    "Developer": (
        "Labels, reviews, uploads, trains and exports; does not manage members or the project.",
        [
            "view_project",
            "annotate_project",
            "review_project",
            "manage_labels_project",
            "upload_project",
            "delete_images_project",
            "train_project",
            "export_project",
        ],
    ),
    "Labeler": ("Sees images and labels them.", ["view_project", "annotate_project"]),
    "Viewer": ("Sees the project, read-only.", ["view_project"]),
}


def seed_roles(apps, schema_editor):
    # Permissions are normally made after all migrations; roles need them now.
    app_config = apps.get_app_config("projects")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    Permission = apps.get_model("auth", "Permission")
    Role = apps.get_model("projects", "Role")
    for name, (description, codenames) in ROLES.items():
        role, _ = Role.objects.update_or_create(name=name, defaults={"description": description, "is_builtin": True})
        role.permissions.set(Permission.objects.filter(content_type__app_label="projects", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(seed_roles, migrations.RunPython.noop)]
