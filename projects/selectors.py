"""Reads that cross models and permissions: a project's member or label, as seen by a user."""

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404

from projects.models import Image, Label, Membership
from projects.permissions import access_project


def membership_get(*, user, project_id: int, member_id: int, perm: str = "view_project") -> Membership:
    """The membership of `member_id` in a project `user` may `perm` in; 404 if either is not there."""
    project = access_project(user, project_id, perm)
    membership = Membership.objects.select_related("user", "role").filter(project=project, user_id=member_id).first()
    if membership is None:
        raise Http404("This user is not a member of the project.")
    membership.project = project
    return membership


def label_get(*, user, project_id: int, label_id: int, perm: str = "view_project") -> Label:
    """A label of a project `user` may `perm` in; a label of another project is 404."""
    project = access_project(user, project_id, perm)
    label = Label.objects.filter(project=project, pk=label_id).first()
    if label is None:
        raise Http404("No such label.")
    label.project = project
    return label


def label_usage(*, project) -> list[Label]:
    """The project's labels with how many objects and images use each.

    One subquery per count: joining both tables would multiply their rows (objects x images).
    """
    from annotations.models import Annotation, Classification

    def count(model):
        rows = model.objects.filter(label=OuterRef("pk")).order_by().values("label").annotate(n=Count("pk"))
        return Coalesce(Subquery(rows.values("n"), output_field=IntegerField()), 0)

    from projects.attributes import definitions_text

    labels = list(project.labels.annotate(objects=count(Annotation), images=count(Classification)))
    for label in labels:
        label.attributes_text = definitions_text(label.attributes)
    return labels


def projects_overview(projects: QuerySet):
    """Projects with what the list shows of each: a cover image, counts of images, labels and labeled
    images, and the names of its newest models. One subquery per figure, so rows never multiply."""
    from annotations.filters import has_any_label
    from training.models import ModelVersion

    def count(queryset):
        rows = queryset.order_by().values("project_id").annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(rows, output_field=IntegerField()), 0)

    images = Image.objects.filter(project=OuterRef("pk"))
    labeled = images.filter(has_any_label())
    overview = projects.annotate(
        image_count=count(images),
        label_count=count(Label.objects.filter(project=OuterRef("pk"))),
        labeled_count=count(labeled),
        model_count=count(ModelVersion.objects.filter(project=OuterRef("pk"))),
        cover_id=Subquery(images.order_by("-id").values("pk")[:1]),
    )
    rows = list(overview)
    models: dict[int, list[str]] = {}
    for project_id, name in ModelVersion.objects.filter(project__in=[p.pk for p in rows]).values_list(
        "project_id", "name"
    ):
        models.setdefault(project_id, []).append(name)  # newest first, the model's default order
    for project in rows:
        project.model_names = models.get(project.pk, [])[:3]
    return rows


def ids_parse(values) -> list[int]:
    """Image ids from request values (`image` fields, an `ids` list): what is not a plain number is ignored.

    str.isdigit alone is not enough: it accepts '²', which int() refuses.
    """
    return [int(value) for value in (v.strip() for v in values) if value.isascii() and value.isdigit()]


def image_in_project(project, raw: str):
    """The project's image with the id `raw` (as a request sends it), or None."""
    ids = ids_parse([raw])
    return Image.objects.for_project(project).filter(pk=ids[0]).first() if ids else None
