"""The permission matrices cover the whole URL configuration: every route, with every method its view answers,
has an entry (expected codes for anonymous, stranger and each role, and an unchanged database on denial) in
one of them, or is public on purpose. A new URL without an entry fails here, from its first day."""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver, resolve

from tests.projects import test_permission_matrix as projects_matrix
from tests.training import test_permissions as training_matrix

# Routes anyone may use, and why.
PUBLIC = {
    "": "a redirect to the project list (which needs a log-in)",
    "healthz": "the load balancer's check; details only for staff or a health token",
    "api/auth/register/": "sign-up, throttled",
    "api/auth/token/": "log-in for scripts, throttled",
    "api/schema/": "the OpenAPI schema",
    "api/docs/": "Swagger UI",
    "accounts/signup/": "sign-up, throttled",
    "accounts/login/": "log-in, throttled",
    "accounts/logout/": "log-out",
}
# Routes whose permissions need a world of their own, each tested with exact codes (404 for a stranger, 403 for
# a member without the right, nothing changed) where named.
ELSEWHERE = {
    ("api/invitations/<int:invitation_id>/accept/", "post"): "projects/test_members_api.py: only for its addressee",
    ("api/invitations/<int:invitation_id>/decline/", "post"): "projects/test_members_api.py: only for its addressee",
    ("projects/invitations/<int:invitation_id>/<str:answer>/", "post"): "projects/test_pages.py: settings and members",
    ("api/images/<int:image_id>/history/<int:entry_id>/restore/", "post"): "annotations/test_first_hour_bugs.py",
    ("api/projects/<int:project_id>/import/", "post"): "annotations/test_transfers_api.py: permissions",
    ("api/projects/<int:project_id>/import/preview/", "post"): "annotations/test_first_hour_bugs.py: stranger 404",
    ("api/transfers/<int:job_id>/file/", "get"): "annotations/test_transfers_api.py: permissions",
    ("api/images/<int:image_id>/smart/", "post"): "annotations/test_smart_api.py: only annotators",
    ("api/projects/<int:project_id>/similar/", "post"): "similarity/test_pages.py: stranger and viewer",
    ("api/pair-searches/<int:search_id>/", "get"): "similarity/test_similarity_api.py",
    ("projects/<int:project_id>/similar-pairs/<int:search_id>/", "get"): "similarity/test_pages.py",
}
METHODS = ("get", "post", "put", "patch", "delete")
# How a matrix row's method reads: some rows send a special body.
ROW_METHODS = {"upload": "post", "predict": "post"}


def routes() -> dict[str, set[str]]:
    """Every route of the URL configuration (admin's aside) and the methods its view answers."""
    found: dict[str, set[str]] = {}

    def walk(resolver, prefix: str) -> None:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                if str(pattern.pattern) != "admin/":
                    walk(pattern, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                found[prefix + str(pattern.pattern).lstrip("^")] = view_methods(pattern.callback)

    walk(get_resolver(), "")
    return found


def view_methods(view) -> set[str]:
    """A class-based view's handlers; a function view's require_http_methods list (GET when it has none)."""
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    if view_class is not None:
        return {m for m in METHODS if hasattr(view_class, m)}
    function = view
    while function is not None:
        for cell in function.__closure__ or ():
            contents = cell.cell_contents
            if (
                isinstance(contents, (list, tuple))
                and contents
                and all(m in {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"} for m in contents)
            ):
                return {m.lower() for m in contents} - {"head"}
        function = getattr(function, "__wrapped__", None)
    return {"get"}


def covered() -> set[tuple[str, str]]:
    """(route, method) of every row of every matrix: each row's URL resolved to the route it reaches."""
    rows = [
        *[(m, u) for _, m, u, _, _ in projects_matrix.API + projects_matrix.PAGES],
        *projects_matrix.ACCOUNT_API,
        *projects_matrix.ACCOUNT_PAGES,
        *[(m, u) for _, m, u, _, _ in training_matrix.API + training_matrix.PAGES],
    ]
    out = set()
    for method, url in rows:
        concrete = re.sub(r"\{[a-z_]+\}", "1", url)
        out.add((resolve(concrete.split("?")[0]).route, ROW_METHODS.get(method, method)))
    return out


def test_every_route_and_method_has_a_permission_matrix_entry_or_is_public():
    rows = covered() | set(ELSEWHERE)
    missing = sorted(
        f"{method.upper()} /{route}"
        for route, methods in routes().items()
        if route not in PUBLIC
        for method in methods
        if (route, method) not in rows
    )
    assert missing == []


def test_every_matrix_entry_reaches_a_route():
    known = {route for route in routes()}
    assert sorted(route for route, _ in covered() | set(ELSEWHERE) if route not in known) == []
