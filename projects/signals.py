"""File clean-up only: an image row deleted (alone or with its project) takes its files with it, and a SeeMe
dataset its logo."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from projects.models import Image, SeemeDataset


@receiver(post_delete, sender=Image, dispatch_uid="image_files_delete")
def image_files_delete(sender, instance: Image, **kwargs) -> None:
    files = [f for f in (instance.file, instance.thumbnail) if f]
    names = [(f.storage, f.name) for f in files]
    # After commit, so a rolled-back delete never loses a file.
    transaction.on_commit(lambda: [storage.delete(name) for storage, name in names])


@receiver(post_delete, sender=SeemeDataset, dispatch_uid="seeme_dataset_logo_delete")
def seeme_dataset_logo_delete(sender, instance: SeemeDataset, **kwargs) -> None:
    if instance.logo:
        storage, name = instance.logo.storage, instance.logo.name
        transaction.on_commit(lambda: storage.delete(name))
