"""GET /healthz: is the database up, is pgvector installed, is a worker of each cluster (cpu, gpu) alive, can
the smart tool use the SAM checkpoint it was given. Anyone gets the status; the details (versions, hosts,
errors) need staff or the X-Health-Token header equal to SIGHTLINE_HEALTH_TOKEN."""

import hmac

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from jobs.registry import CPU, GPU


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        return {"ok": True, "version": cursor.fetchone()[0].split(" on ")[0]}


def _vector() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        return {"ok": False, "error": "The vector extension is not installed; run manage.py migrate."}
    return {"ok": True, "version": row[0]}


def _cluster(name: str, serves: list[str]) -> dict:
    """The freshest heartbeat among the workers that serve the `serves` queues."""
    from jobs.models import WorkerHeartbeat

    latest = WorkerHeartbeat.objects.filter(cluster__in=serves).order_by("-beat_at").first()
    if latest is None:
        return {"ok": False, "error": f"No worker of the {name} cluster has reported yet; start {_start_hint(name)}."}
    age = (timezone.now() - latest.beat_at).total_seconds()
    body = {
        "host": latest.host,
        "served_by": latest.cluster,
        "last_heartbeat_at": latest.beat_at.isoformat(),
        "age_seconds": round(age, 1),
    }
    if age > settings.SIGHTLINE_WORKER_STALE_SECONDS:
        return {"ok": False, **body, "error": f"The last heartbeat of the {name} cluster is {age:.0f} s old."}
    return {"ok": True, **body}


def _start_hint(name: str) -> str:
    return f"Q_CLUSTER_NAME={name} manage.py qcluster" if settings.SIGHTLINE_ROUTE_BY_CLUSTER else "manage.py qcluster"


def _workers() -> dict:
    """Each cluster separately. Without routing, the one default worker serves both."""
    from django_q.conf import Conf

    clusters = {}
    for name in (CPU, GPU):
        clusters[name] = _cluster(name, [name] if settings.SIGHTLINE_ROUTE_BY_CLUSTER else [Conf.PREFIX])
    return {"ok": all(c["ok"] for c in clusters.values()), "routed": settings.SIGHTLINE_ROUTE_BY_CLUSTER, **clusters}


def _smart() -> dict:
    from annotations.smart import smart_backend

    backend = smart_backend()
    return {"ok": not backend.error, **backend.as_dict()}


CHECKS = {"database": _database, "vector": _vector, "workers": _workers, "smart": _smart}


@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        if name in {"vector", "workers"} and not results["database"]["ok"]:
            results[name] = {"ok": False, "error": "The database is down."}
            continue
        try:
            results[name] = check()
        except Exception as exc:  # a health check reports every failure instead of raising it
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    healthy = all(r["ok"] for r in results.values())
    body = {"status": "ok" if healthy else "unhealthy"}
    if _may_see_details(request):
        # Versions, hosts and socket paths help an attacker as much as an operator: staff and monitors only.
        body.update(failing=[name for name, r in results.items() if not r["ok"]], checks=results)
    return JsonResponse(body, status=200 if healthy else 503)


def _may_see_details(request) -> bool:
    token = settings.SIGHTLINE_HEALTH_TOKEN
    given = request.headers.get("X-Health-Token", "")
    if token and hmac.compare_digest(given.encode(), token.encode()):
        return True
    return bool(getattr(request, "user", None) and request.user.is_staff)
