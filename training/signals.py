"""File clean-up only: a model row deleted (alone, with its job, or with its project) takes its files with it, and
a SeeMe model its logo."""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from training.models import ModelVersion, SeemeModel


@receiver(post_delete, sender=ModelVersion, dispatch_uid="model_files_delete")
def model_files_delete(sender, instance: ModelVersion, **kwargs) -> None:
    fields = (instance.best_checkpoint, instance.last_checkpoint, instance.best_evaluation, instance.last_evaluation)
    names = [(f.storage, f.name) for f in fields if f]
    pk = instance.pk
    # After commit, so a rolled-back delete never loses a file.
    transaction.on_commit(lambda: [storage.delete(name) for storage, name in names] + [_bundles_delete(pk)])


def _bundles_delete(pk: int) -> None:
    """The model's built bundles (training/bundles.py keeps them under bundles/{pk}/)."""
    from django.core.files.storage import default_storage

    folder = f"bundles/{pk}"
    try:
        _, files = default_storage.listdir(folder)
    except FileNotFoundError:  # none was built
        return
    for name in files:
        default_storage.delete(f"{folder}/{name}")


@receiver(post_delete, sender=SeemeModel, dispatch_uid="seeme_model_logo_delete")
def seeme_model_logo_delete(sender, instance: SeemeModel, **kwargs) -> None:
    if instance.logo:
        storage, name = instance.logo.storage, instance.logo.name
        transaction.on_commit(lambda: storage.delete(name))
