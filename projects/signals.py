"""An image row deleted (alone or with its project) takes its files with it; guardian's rows follow memberships."""

from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from projects.models import Image, Membership, Project, Role


@receiver(post_delete, sender=Image, dispatch_uid="image_files_delete")
def image_files_delete(sender, instance: Image, **kwargs) -> None:
    files = [f for f in (instance.file, instance.thumbnail) if f]
    names = [(f.storage, f.name) for f in files]
    # After commit, so a rolled-back delete never loses a file.
    transaction.on_commit(lambda: [storage.delete(name) for storage, name in names])


# Guardian's rows follow memberships and roles whichever way they change: a role's permissions edited in a shell or a
# data migration (role.permissions.add()), a membership saved or deleted without the services. What bypasses signals
# (a queryset's update(), raw SQL, guardian's own assign_perm) `manage.py permissions_check` reports, and --repair mends.


@receiver(m2m_changed, sender=Role.permissions.through, dispatch_uid="role_permissions_follow")
def role_permissions_follow(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    from projects.services import role_memberships_resync

    roles = [instance] if not reverse else list(Role.objects.filter(pk__in=pk_set or ()))
    if reverse and action == "post_clear":  # a permission taken from every role: which ones is not known any more
        roles = list(Role.objects.all())
    for role in roles:
        role_memberships_resync(role=role)


@receiver(post_save, sender=Membership, dispatch_uid="membership_permissions_follow")
def membership_permissions_follow(sender, instance: Membership, raw: bool = False, **kwargs) -> None:
    if raw:  # loaddata: the rows come from the fixture, and permissions_check compares
        return
    from projects.services import _permissions_sync

    _permissions_sync(instance)


@receiver(post_delete, sender=Membership, dispatch_uid="membership_permissions_leave")
def membership_permissions_leave(sender, instance: Membership, **kwargs) -> None:
    from projects.services import _permission_rows

    _permission_rows(project=Project(pk=instance.project_id), user=instance.user_id).delete()
