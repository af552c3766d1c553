"""Compare django-guardian's project permission rows with what memberships and roles grant, and mend them.

Memberships and roles are the source of truth. The services keep guardian's rows in step; a change that bypasses
them (role.permissions.add() or a membership saved in a shell or a data migration, a queryset's update(), raw SQL,
guardian's assign_perm) leaves them stale, which this reports. Exit status 1 when drift is found and not repaired, so a cron job or a deploy check can alert on it.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from projects.services import permissions_drift, permissions_repair


class Command(BaseCommand):
    help = "Report where guardian's project permissions differ from memberships and roles; --repair mends them."

    def add_arguments(self, parser):
        parser.add_argument("--repair", action="store_true", help="Make guardian's rows match the memberships.")

    def handle(self, *args, repair: bool = False, **options):
        drift = permissions_drift()
        if not drift:
            self.stdout.write("No drift: guardian's project permissions match every membership and role.")
            return
        names = dict(
            get_user_model().objects.filter(pk__in={d["user_id"] for d in drift}).values_list("pk", "username")
        )
        for item in drift:
            who = names.get(item["user_id"], f"user {item['user_id']}")
            if item["what"] == "missing":
                self.stdout.write(f"missing: {who} lacks {item['codename']} on project {item['project_id']}")
            else:
                self.stdout.write(f"extra: {who} holds {item['codename']} on project {item['project_id']} unexplained")
        if repair:
            changed = permissions_repair()
            self.stdout.write(f"Repaired {changed} row{'s' if changed != 1 else ''}.")
            return
        raise CommandError(f"{len(drift)} difference(s); run with --repair to mend them.")
