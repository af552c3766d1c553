"""`manage.py annotations_history_purge --older-than DAYS [--project ID]`: forget what replaces overwrote."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from annotations.services.history import history_purge


class Command(BaseCommand):
    help = "Delete the annotation history that bulk replaces kept, older than the given number of days."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=int, required=True, metavar="DAYS")
        parser.add_argument("--project", type=int, default=None)

    def handle(self, *args, older_than: int, project: int | None, **options):
        before = timezone.now() - timedelta(days=older_than)
        deleted = history_purge(before=before, project_id=project)
        self.stdout.write(f"Purged {deleted} replaced document{'s' if deleted != 1 else ''}.")
