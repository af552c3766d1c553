"""`manage.py embeddings_reindex [--project ID]`: recompute the similarity embeddings of one project or all."""

from django.core.management.base import BaseCommand, CommandError

from projects.models import Project
from similarity import services


class Command(BaseCommand):
    help = "Recompute the image embeddings of one project (--project ID) or of every project, in place."

    def add_arguments(self, parser):
        parser.add_argument("--project", type=int, help="Only this project's images.")

    def handle(self, *args, project: int | None, **options):
        chosen = None
        if project is not None:
            chosen = Project.objects.filter(pk=project).first()
            if chosen is None:
                raise CommandError(f"No project with id {project}.")
        count = services.embeddings_reindex(project=chosen)
        where = f"project {chosen.pk} ({chosen.name})" if chosen else "every project"
        self.stdout.write(self.style.SUCCESS(f"Embedded {count} images of {where}."))
