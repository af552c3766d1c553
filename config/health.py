"""GET /healthz: is the database up, is pgvector installed, is a background worker alive, can the smart tool
use the SAM checkpoint it was given."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET


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


def _worker() -> dict:
    from training.models import WorkerHeartbeat

    latest = WorkerHeartbeat.objects.order_by("-beat_at").first()
    if latest is None:
        return {"ok": False, "error": "No background worker has reported yet; start manage.py qcluster."}
    age = (timezone.now() - latest.beat_at).total_seconds()
    body = {"host": latest.host, "last_heartbeat_at": latest.beat_at.isoformat(), "age_seconds": round(age, 1)}
    if age > settings.SIGHTLINE_WORKER_STALE_SECONDS:
        return {"ok": False, **body, "error": f"The last worker heartbeat is {age:.0f} s old."}
    return {"ok": True, **body}


def _smart() -> dict:
    from annotations.smart import smart_backend

    backend = smart_backend()
    return {"ok": not backend.error, **backend.as_dict()}


CHECKS = {"database": _database, "vector": _vector, "worker": _worker, "smart": _smart}


@require_GET
def healthz(request):
    results = {}
    for name, check in CHECKS.items():
        if name in {"vector", "worker"} and not results["database"]["ok"]:
            results[name] = {"ok": False, "error": "The database is down."}
            continue
        try:
            results[name] = check()
        except Exception as exc:  # a health check reports every failure instead of raising it
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    healthy = all(r["ok"] for r in results.values())
    failing = [name for name, r in results.items() if not r["ok"]]
    body = {"status": "ok" if healthy else "unhealthy", "failing": failing, "checks": results}
    return JsonResponse(body, status=200 if healthy else 503)
