"""Project owners and admins who are not staff manage their own projects in Django admin: members, the project's
own roles, labels, ownership; and nothing else. Memberships and roles stay the truth that guardian follows."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from guardian.models import UserObjectPermission
from guardian.shortcuts import assign_perm, get_perms

from annotations.models import Annotation
from projects.models import Label, Membership, Project, ProjectEvent, Role
from projects.uploads import images_upload
from tests.factories import UserFactory, image_file, make_project

pytestmark = pytest.mark.django_db


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _perm_ids(*codenames: str) -> list[int]:
    return list(
        Permission.objects.filter(content_type__model="project", codename__in=codenames).values_list("pk", flat=True)
    )


@pytest.fixture
def world():
    """Two projects: A, owned by `owner` with an Admin, a Labeler and a Viewer; B, owned by someone else, with its
    own member, role and label."""
    owner, admin, labeler, viewer = (UserFactory(username=n) for n in ("ann", "adam", "lab", "vic"))
    a = make_project(owner=owner, name="A", Admin=admin, Labeler=labeler, Viewer=viewer)
    other = UserFactory(username="bob")
    b = make_project(owner=other, name="B", Labeler=UserFactory(username="bea"))
    b_role = Role.objects.create(name="B reviewers", project=b)
    b_role.permissions.set(_perm_ids("view_project"))
    b_label = Label.objects.create(project=b, name="b-label")
    a_label = Label.objects.create(project=a, name="gull")
    return {
        "owner": owner,
        "admin": admin,
        "labeler": labeler,
        "viewer": viewer,
        "a": a,
        "b": b,
        "b_role": b_role,
        "b_label": b_label,
        "a_label": a_label,
        "other": other,
    }


def test_who_may_open_admin(world, client):
    # A stranger goes to the app's log-in page, which is throttled; admin's own form is never shown.
    response = client.get("/admin/")
    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/admin/")
    response = client.get("/admin/login/?next=/admin/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=%2Fadmin%2F")
    # A Labeler and a Viewer manage nothing: refused.
    for name in ("labeler", "viewer"):
        member = _signed_in(world[name])
        assert member.get("/admin/", follow=True).status_code == 403
        assert member.get("/admin/projects/project/").status_code == 302  # to the log-in, which refuses them
        refused = member.get("/admin/login/")
        assert refused.status_code == 403
        assert "your account manages no project." in refused.content.decode()  # the page says why (403.html)
    # The Owner and an Admin, neither of them staff, see projects, memberships, roles and labels, and nothing more.
    for name in ("owner", "admin"):
        assert not world[name].is_staff
        page = _signed_in(world[name]).get("/admin/")
        assert page.status_code == 200
        models = sorted(m["object_name"] for app in page.context["app_list"] for m in app["models"])
        assert models == ["Label", "Membership", "Project", "Role"]
        projects = _signed_in(world[name]).get("/admin/projects/project/")
        assert [p.name for p in projects.context["cl"].result_list] == ["A"]
        for url in (
            "/admin/accounts/user/",
            "/admin/training/modelversion/",
            "/admin/projects/image/",
            "/admin/auth/group/",
            "/admin/jobs/job/",
        ):
            assert _signed_in(world[name]).get(url).status_code == 403, url
    roles = _signed_in(world["owner"]).get("/admin/projects/role/")
    names = sorted(r.name for r in roles.context["cl"].result_list)
    assert names == ["Admin", "Developer", "Labeler", "Owner", "Viewer"]  # B's role is not there


def test_an_owner_adds_changes_and_removes_members_by_exact_name(world):
    owner, a = _signed_in(world["owner"]), world["a"]
    newcomer = UserFactory(username="nia", email="nia@example.com")
    labeler = Role.objects.builtin("Labeler")
    # The form asks for a username or an e-mail address: no list of the server's users, no autocomplete.
    form = owner.get("/admin/projects/membership/add/")
    assert "member" in form.context["adminform"].form.fields and "user" not in form.context["adminform"].form.fields
    assert owner.get("/admin/autocomplete/?app_label=projects&model_name=membership&field_name=user").status_code == 403
    unknown = owner.post("/admin/projects/membership/add/", {"project": a.pk, "member": "ni", "role": labeler.pk})
    assert unknown.status_code == 200
    assert "No active user has exactly this username or e-mail address." in unknown.content.decode()
    added = owner.post(
        "/admin/projects/membership/add/", {"project": a.pk, "member": "NIA@example.com", "role": labeler.pk}
    )
    assert added.status_code == 302
    assert sorted(get_perms(newcomer, a)) == ["annotate_project", "view_project"]
    membership = Membership.objects.get(project=a, user=newcomer)
    page = owner.get(f"/admin/projects/membership/{membership.pk}/change/")
    assert "annotate_project, view_project" in page.content.decode()  # the permissions, read only
    viewer = Role.objects.builtin("Viewer")
    changed = owner.post(f"/admin/projects/membership/{membership.pk}/change/", {"member": "nia", "role": viewer.pk})
    assert changed.status_code == 302 and get_perms(newcomer, a) == ["view_project"]
    deleted = owner.post(f"/admin/projects/membership/{membership.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and get_perms(newcomer, a) == []
    assert not Membership.objects.filter(user=newcomer).exists()
    # The history on the members page: who, what, in admin.
    events = list(ProjectEvent.objects.filter(project=a).values_list("actor__username", "message"))
    assert events[:3] == [
        ("ann", "removed nia (Viewer)"),
        ("ann", "changed nia's role from Labeler to Viewer"),
        ("ann", "added nia as Labeler"),
    ]
    settings_page = owner.get(f"/projects/{a.pk}/settings/").content.decode()
    assert "changed nia&#x27;s role from Labeler to Viewer" in settings_page
    assert LogEntry.objects.filter(user=world["owner"]).count() == 3  # admin's own log too


def test_only_the_owner_transfers_ownership(world):
    a, admin = world["a"], world["admin"]
    as_admin = _signed_in(admin).get(f"/admin/projects/project/{a.pk}/change/")
    assert "transfer_to" not in as_admin.context["adminform"].form.fields
    form = _signed_in(world["owner"]).get(f"/admin/projects/project/{a.pk}/change/").context["adminform"].form
    assert sorted(u.username for u in form.fields["transfer_to"].queryset) == ["adam", "lab", "vic"]
    data = {
        "name": "A",
        "description": "",
        "sync_labels": "",
        "transfer_to": admin.pk,
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = _signed_in(world["owner"]).post(f"/admin/projects/project/{a.pk}/change/", data)
    assert response.status_code == 302
    a.refresh_from_db()
    assert a.owner == admin
    assert Membership.objects.get(project=a, user=world["owner"]).role.name == "Admin"
    assert ProjectEvent.objects.filter(project=a).first().message == "transferred ownership from ann to adam"


def test_an_owner_makes_a_role_of_their_own_project(world):
    owner, a, b = _signed_in(world["owner"]), world["a"], world["b"]
    data = {
        "name": "Reviewer",
        "description": "Checks",
        "project": a.pk,
        "permissions": _perm_ids("view_project", "review_project"),
    }
    assert owner.post("/admin/projects/role/add/", data).status_code == 302
    reviewer = Role.objects.get(name="Reviewer")
    assert (reviewer.project, reviewer.codenames()) == (a, {"view_project", "review_project"})
    # It is offered in project A only, in the app and in admin, and B cannot be given it.
    settings_page = owner.get(f"/projects/{a.pk}/settings/")
    assert "Reviewer" in [r.name for r in settings_page.context["role_form"].fields["role"].queryset]
    assert not Role.objects.for_project(b).filter(name="Reviewer").exists()
    membership = Membership.objects.get(project=a, user=world["viewer"])
    owner.post(f"/admin/projects/membership/{membership.pk}/change/", {"member": "vic", "role": reviewer.pk})
    assert sorted(get_perms(world["viewer"], a)) == ["review_project", "view_project"]
    # Changing the role's permissions takes effect at once.
    data = {"name": "Reviewer", "description": "Checks", "permissions": _perm_ids("view_project", "export_project")}
    assert owner.post(f"/admin/projects/role/{reviewer.pk}/change/", data).status_code == 302
    assert sorted(get_perms(world["viewer"], a)) == ["export_project", "view_project"]
    # In use: admin's delete page says by whom, and a delete is refused.
    page = owner.get(f"/admin/projects/role/{reviewer.pk}/delete/")
    assert page.status_code == 200 and "vic is Reviewer in A" in page.content.decode()
    refused = owner.post(f"/admin/projects/role/{reviewer.pk}/delete/", {"post": "yes"})
    assert refused.status_code == 200 and "<title>Cannot delete role" in refused.content.decode()
    assert Role.objects.filter(pk=reviewer.pk).exists()
    # Out of use, it goes.
    owner.post(
        f"/admin/projects/membership/{membership.pk}/change/",
        {"member": "vic", "role": Role.objects.builtin("Viewer").pk},
    )
    assert owner.post(f"/admin/projects/role/{reviewer.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Role.objects.filter(pk=reviewer.pk).exists()
    messages = list(ProjectEvent.objects.filter(project=a).values_list("message", flat=True))
    assert "deleted the role Reviewer" in messages
    assert "created the role Reviewer: review_project, view_project" in messages
    assert "changed the role Reviewer: export_project, view_project" in messages


def test_no_escalation(world):
    owner, a = _signed_in(world["owner"]), world["a"]
    user = world["owner"]
    # Staff cannot be granted: the user admin is closed to owners.
    assert owner.get(f"/admin/accounts/user/{user.pk}/change/").status_code == 403
    assert (
        owner.post(f"/admin/accounts/user/{user.pk}/change/", {"is_staff": "on", "username": "ann"}).status_code == 403
    )
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser
    # Built-in roles: read only.
    labeler = Role.objects.builtin("Labeler")
    before = labeler.codenames()
    response = owner.post(
        f"/admin/projects/role/{labeler.pk}/change/",
        {"name": "Labeler", "description": "", "permissions": _perm_ids("manage_members_project")},
    )
    assert response.status_code == 403 and Role.objects.builtin("Labeler").codenames() == before
    assert owner.post(f"/admin/projects/role/{labeler.pk}/delete/", {"post": "yes"}).status_code == 403
    # No permission outside the project list, and no role without a project, nor named as a server-wide one.
    outside = Permission.objects.get(codename="add_user")
    refused = owner.post("/admin/projects/role/add/", {"name": "Boss", "project": a.pk, "permissions": [outside.pk]})
    assert refused.status_code == 200 and not Role.objects.filter(name="Boss").exists()
    refused = owner.post("/admin/projects/role/add/", {"name": "Boss", "project": "", "permissions": []})
    assert refused.status_code == 200 and not Role.objects.filter(name="Boss").exists()
    refused = owner.post("/admin/projects/role/add/", {"name": "labeler", "project": a.pk, "permissions": []})
    assert refused.status_code == 200
    assert "&#x27;labeler&#x27; is a role of every project already; choose another name." in refused.content.decode()
    # Nobody becomes Owner through a membership.
    newcomer = UserFactory(username="zed")
    refused = owner.post(
        "/admin/projects/membership/add/", {"project": a.pk, "member": "zed", "role": Role.objects.builtin("Owner").pk}
    )
    assert refused.status_code == 200 and not Membership.objects.filter(user=newcomer).exists()
    # B's role, offered to A's member: refused.
    refused = owner.post(
        "/admin/projects/membership/add/", {"project": a.pk, "member": "zed", "role": world["b_role"].pk}
    )
    assert refused.status_code == 200 and not Membership.objects.filter(user=newcomer).exists()


def _snapshot() -> dict:
    """Every row an admin request could change, to show that a refused one changed none."""
    return {
        "projects": sorted(Project.objects.values_list("pk", "name", "description", "owner_id", "sync_labels")),
        "memberships": sorted(Membership.objects.values_list("pk", "project_id", "user_id", "role_id")),
        "roles": sorted(Role.objects.values_list("pk", "name", "project_id", "description")),
        "role_permissions": sorted(Role.permissions.through.objects.values_list("role_id", "permission_id")),
        "labels": sorted(Label.objects.values_list("pk", "project_id", "name", "color", "hotkey")),
        "guardian": sorted(UserObjectPermission.objects.values_list("user_id", "object_pk", "permission_id")),
        "events": ProjectEvent.objects.count(),
    }


def test_an_owner_of_a_reaches_nothing_of_b_through_any_admin_url(world):
    """The cross-project matrix: every admin URL of every model an owner sees, with B's objects."""
    b = world["b"]
    b_membership = Membership.objects.get(project=b, user__username="bea")
    objects = {
        "project": b.pk,
        "membership": b_membership.pk,
        "role": world["b_role"].pk,
        "label": world["b_label"].pk,
    }
    calls = []
    for model, pk in objects.items():
        base = f"/admin/projects/{model}/"
        calls += [
            ("get", f"{base}{pk}/change/", None, 404),
            ("post", f"{base}{pk}/change/", {"name": "taken", "member": "bea", "role": world["b_role"].pk}, 404),
            ("get", f"{base}{pk}/delete/", None, 404),
            ("post", f"{base}{pk}/delete/", {"post": "yes"}, 404),
            ("get", f"{base}{pk}/history/", None, 404),
            ("get", f"{base}{pk}/", None, 404),  # admin's old-style URL, redirected to change: a 404 as well
            ("post", base, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}, 404),
            ("get", f"{base}?{'id' if model == 'project' else 'project__id__exact'}={b.pk}", None, 404),
            ("get", f"{base}?_to_field=id&_popup=1&{'id' if model == 'project' else 'project'}={b.pk}", None, 404),
            ("get", f"/admin/autocomplete/?app_label=projects&model_name={model}&field_name=project&term=B", None, 403),
        ]
    calls += [
        ("get", f"/admin/r/{_content_type('project')}/{b.pk}/", None, 404),
        ("get", f"/admin/r/{_content_type('label')}/{world['b_label'].pk}/", None, 404),
        (
            "post",
            "/admin/projects/membership/add/",
            {"project": b.pk, "member": "lab", "role": Role.objects.builtin("Viewer").pk},
            403,
        ),
        ("post", "/admin/projects/label/add/", {"project": b.pk, "name": "x", "color": "#112233"}, 403),
        (
            "post",
            "/admin/projects/role/add/",
            {"name": "Sneaky", "project": b.pk, "permissions": _perm_ids("view_project")},
            403,
        ),
        ("get", f"/admin/projects/membership/?role__id__exact={world['b_role'].pk}", None, 400),  # no such filter here
        ("get", "/admin/projects/label/?project__owner__username=bob", None, 400),
    ]
    before = _snapshot()
    for name in ("owner", "admin"):
        client = _signed_in(world[name])
        for method, url, data, expected in calls:
            response = getattr(client, method)(url, data or {})
            if expected == 404 and response.status_code == 302 and response["Location"] == f"{url}change/":
                response = client.get(response["Location"])  # admin's /<model>/<id>/ -> its change page
            assert response.status_code == expected, (name, method, url, response.status_code)
            assert _snapshot() == before, (name, method, url)
    # And the same calls on A's own objects do reach them (the matrix refuses for the right reason).
    a = world["a"]
    own = _signed_in(world["owner"])
    assert own.get(f"/admin/projects/project/{a.pk}/change/").status_code == 200
    assert own.get(f"/admin/projects/project/{a.pk}/history/").status_code == 200
    assert own.get(f"/admin/projects/label/{world['a_label'].pk}/change/").status_code == 200
    assert own.get(f"/admin/projects/membership/?project__id__exact={a.pk}").status_code == 200


def _content_type(model: str) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get(app_label="projects", model=model).pk


def test_labels_in_admin_go_through_the_label_services(world, django_capture_on_commit_callbacks):
    owner, a = _signed_in(world["owner"]), world["a"]
    clash = owner.post("/admin/projects/label/add/", {"project": a.pk, "name": "gull ", "color": "#112233"})
    assert clash.status_code == 200
    assert "A label named &#x27;gull&#x27; already exists in this project." in clash.content.decode()
    assert (
        owner.post("/admin/projects/label/add/", {"project": a.pk, "name": "tern", "color": "#112233"}).status_code
        == 302
    )
    tern = Label.objects.get(project=a, name="tern")
    [image] = images_upload(project=a, user=world["owner"], files=[image_file()], labels=[]).stored
    Annotation.objects.create(
        image=image,
        label=tern,
        kind="box",
        geometry={"x": 1, "y": 1, "width": 3, "height": 3},
    )
    revision = image.annotation_revision
    assert owner.post(f"/admin/projects/label/{tern.pk}/delete/", {"post": "yes"}).status_code == 302
    image.refresh_from_db()
    assert image.annotation_revision == revision + 1 and not Label.objects.filter(pk=tern.pk).exists()


def _drift() -> tuple[str, bool]:
    out = io.StringIO()
    try:
        call_command("permissions_check", stdout=out)
    except CommandError:
        return out.getvalue(), True
    return out.getvalue(), False


def test_every_way_of_drifting_is_caught(world):
    """Memberships and roles are the truth; whatever changes them outside the services leaves guardian stale, and
    permissions_check says where, then --repair mends it."""
    a, labeler, viewer = world["a"], world["labeler"], world["viewer"]
    assert _drift() == ("No drift: guardian's project permissions match every membership and role.\n", False)
    # A role's permissions changed in a shell, a membership saved by hand, a queryset's update(), guardian's own
    # assign_perm, the through table edited, raw SQL.
    Role.objects.builtin("Labeler").permissions.add(*Permission.objects.filter(codename="export_project"))
    membership = Membership.objects.get(project=a, user=viewer)
    membership.role = Role.objects.builtin("Developer")
    membership.save()
    Membership.objects.filter(project=a, user=world["admin"]).update(role=Role.objects.builtin("Viewer"))
    assign_perm("delete_project", labeler, a)
    through = Role.permissions.through
    through.objects.filter(role=Role.objects.builtin("Viewer"), permission__codename="view_project").delete()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM projects_membership WHERE project_id = %s AND user_id = %s", [a.pk, labeler.pk])
    report, failed = _drift()
    assert failed
    b = world["b"]
    admin_role = Role.objects.builtin("Admin").codenames()
    developer = Role.objects.builtin("Developer").codenames()
    expected = sorted(
        [
            # lab's membership is gone: every row of theirs is unexplained, delete_project included.
            *[f"extra: lab holds {c} on project {a.pk} unexplained" for c in ("annotate_project", "delete_project")],
            f"extra: lab holds view_project on project {a.pk} unexplained",
            # Labelers elsewhere lack the export the role now grants.
            f"missing: bea lacks export_project on project {b.pk}",
            # vic became a Developer by hand.
            *[f"missing: vic lacks {c} on project {a.pk}" for c in sorted(developer - {"view_project"})],
            # adam was made a Viewer by update(), and the Viewer role lost view_project.
            *[f"extra: adam holds {c} on project {a.pk} unexplained" for c in sorted(admin_role)],
        ]
    )
    assert sorted(report.splitlines()) == expected
    out = io.StringIO()
    call_command("permissions_check", "--repair", stdout=out)
    assert out.getvalue().splitlines()[-1] == f"Repaired {len(expected)} rows."
    assert _drift()[1] is False
    assert get_perms(labeler, a) == [] and get_perms(world["admin"], a) == []
    assert sorted(get_perms(viewer, a)) == sorted(developer)
    assert sorted(get_perms(b.memberships.get(user__username="bea").user, b)) == [
        "annotate_project",
        "export_project",
        "view_project",
    ]
    # A missing row is caught and put back as well.
    UserObjectPermission.objects.filter(user=viewer, object_pk=str(a.pk), permission__codename="view_project").delete()
    report, failed = _drift()
    assert failed and report == f"missing: vic lacks view_project on project {a.pk}\n"
    call_command("permissions_check", "--repair", stdout=io.StringIO())
    assert "view_project" in get_perms(viewer, a)


def test_a_projects_own_roles_are_listed_to_its_members_only(world):
    from tests.conftest import client_for

    b = world["b"]
    names = ["Admin", "Developer", "Labeler", "Owner", "Viewer"]
    as_ann = client_for(world["owner"])
    assert sorted(r["name"] for r in as_ann.get("/api/roles/").json()) == names  # B's role is not everyone's
    assert as_ann.get(f"/api/roles/?project={b.pk}").status_code == 404
    as_bob = client_for(world["other"])
    listed = as_bob.get(f"/api/roles/?project={b.pk}").json()
    assert sorted(r["name"] for r in listed) == sorted([*names, "B reviewers"])
    assert next(r for r in listed if r["name"] == "B reviewers")["permissions"] == ["view_project"]
    # And a member of B can be given it through the API by name, but not a member of A.
    bea = Membership.objects.get(project=b, user__username="bea").user
    changed = as_bob.patch(f"/api/projects/{b.pk}/members/{bea.pk}/", {"role": "B reviewers"}, format="json")
    assert changed.status_code == 200 and changed.json()["role"] == "B reviewers"
    refused = as_ann.patch(
        f"/api/projects/{world['a'].pk}/members/{world['viewer'].pk}/", {"role": "B reviewers"}, format="json"
    )
    assert refused.status_code == 400 and refused.json() == {"role": ["No role named 'B reviewers'."]}


def test_what_a_review_found_stays_closed(world, client):
    """Holes a review of the first version found, each shown closed."""
    from tests.conftest import client_for

    a, b, owner, admin = world["a"], world["b"], _signed_in(world["owner"]), _signed_in(world["admin"])
    # A bulk delete of a server-wide role would have listed who holds it on the whole server.
    b_member = Membership.objects.get(project=b, user__username="bea")
    labeler = Role.objects.builtin("Labeler")
    for select in ({"_selected_action": [labeler.pk]}, {"_selected_action": [labeler.pk], "select_across": "1"}):
        page = owner.post("/admin/projects/role/", {"action": "delete_selected", "index": "0", **select})
        assert page.status_code == 404 and "bea" not in page.content.decode()
    assert owner.get(f"/admin/projects/role/{labeler.pk}/history/").status_code == 403
    listed = owner.get("/admin/projects/role/").context["cl"].result_list
    assert {r.name: r.member_total for r in listed}["Labeler"] == 1  # lab in A; bea in B is not counted
    assert b_member.role == labeler

    # An Admin, who may not delete the project, grants no role that may: neither in admin nor through the API.
    everything = _perm_ids("view_project", "delete_project")
    refused = admin.post("/admin/projects/role/add/", {"name": "Boss", "project": a.pk, "permissions": everything})
    assert refused.status_code == 200 and not Role.objects.filter(name="Boss").exists()
    assert "You cannot grant what you do not hold in this project yourself: delete_project." in refused.content.decode()
    assert (
        owner.post(
            "/admin/projects/role/add/", {"name": "Boss", "project": a.pk, "permissions": everything}
        ).status_code
        == 302
    )
    boss = Role.objects.get(name="Boss")
    adam = Membership.objects.get(project=a, user=world["admin"])
    refused = admin.post(f"/admin/projects/membership/{adam.pk}/change/", {"member": "adam", "role": boss.pk})
    assert refused.status_code == 200 and Membership.objects.get(pk=adam.pk).role.name == "Admin"
    answer = client_for(world["admin"]).patch(
        f"/api/projects/{a.pk}/members/{world['labeler'].pk}/", {"role": "Boss"}, format="json"
    )
    assert answer.status_code == 400
    assert answer.json() == {
        "role": ["You cannot grant what you do not hold in this project yourself: delete_project."]
    }
    assert "delete_project" not in get_perms(world["admin"], a) and "delete_project" not in get_perms(
        world["labeler"], a
    )

    # Adding someone who is a member already says so, instead of changing their role under "added".
    refused = owner.post(
        "/admin/projects/membership/add/", {"project": a.pk, "member": "lab", "role": Role.objects.builtin("Viewer").pk}
    )
    assert refused.status_code == 200 and "lab is a member already" in refused.content.decode()
    assert Membership.objects.get(project=a, user=world["labeler"]).role == labeler

    # Not digits as int() reads them, and not an address elsewhere.
    assert owner.get("/admin/projects/label/?project__id__exact=²").status_code == 404
    assert (
        owner.post("/admin/projects/label/add/", {"project": "²", "name": "x", "color": "#112233"}).status_code == 403
    )
    away = owner.get("/admin/login/?next=https://evil.example/")
    assert (away.status_code, away["Location"]) == (302, "/admin/")

    # A transfer and the new owner's row removed in one save: the transfer wins, and the new owner stays in.
    vic = Membership.objects.get(project=a, user=world["viewer"])
    data = {
        "name": "A",
        "description": "",
        "transfer_to": world["viewer"].pk,
        "memberships-TOTAL_FORMS": "1",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": vic.pk,
        "memberships-0-project": a.pk,
        "memberships-0-member": "vic",
        "memberships-0-role": Role.objects.builtin("Viewer").pk,
        "memberships-0-DELETE": "on",
    }
    assert owner.post(f"/admin/projects/project/{a.pk}/change/", data).status_code == 302
    a.refresh_from_db()
    assert a.owner == world["viewer"] and Membership.objects.get(pk=vic.pk).role.name == "Owner"
    assert "delete_project" in get_perms(world["viewer"], a)


def test_a_project_whose_own_role_is_in_use_can_be_deleted(world):
    from projects import services

    a = world["a"]
    role = Role.objects.create(name="Reviewer", project=a)
    role.permissions.set(_perm_ids("view_project", "review_project"))
    services.membership_change_role(membership=Membership.objects.get(project=a, user=world["viewer"]), role=role)
    response = _signed_in(world["owner"]).post(f"/projects/{a.pk}/delete/", {"confirm_name": "A"})
    assert response.status_code == 302
    assert not Project.objects.filter(pk=a.pk).exists() and not Role.objects.filter(name="Reviewer").exists()
    assert not UserObjectPermission.objects.filter(object_pk=str(a.pk)).exists()


def test_labels_in_admin_need_the_label_permission_too(world):
    """A member who manages members but not labels (a role of the project's own) sees no label in admin."""
    a = world["a"]
    keeper = Role.objects.create(name="Doorkeeper", project=a)
    keeper.permissions.set(_perm_ids("view_project", "manage_members_project"))
    Membership.objects.filter(project=a, user=world["labeler"]).update(role=keeper)
    call_command("permissions_check", "--repair", stdout=io.StringIO())
    doorkeeper = _signed_in(world["labeler"])
    models = sorted(m["object_name"] for app in doorkeeper.get("/admin/").context["app_list"] for m in app["models"])
    assert models == ["Membership", "Project", "Role"]
    assert doorkeeper.get(f"/admin/projects/label/{world['a_label'].pk}/change/").status_code == 404
