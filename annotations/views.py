"""The labeling-time page: spec 000's two tables, with filters and CSV downloads."""

from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.models import User
from annotations import selectors
from projects.permissions import projects_for_user


class TimeFilterForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    user = forms.ModelChoiceField(queryset=User.objects.none(), required=False, empty_label="everyone I may see")
    project = forms.ModelChoiceField(queryset=None, required=False, empty_label="all my projects")

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        projects = projects_for_user(viewer)
        self.fields["project"].queryset = projects.order_by("name")
        self.fields["user"].queryset = User.objects.filter(memberships__project__in=projects).distinct()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} h {minutes:02} min" if hours else f"{minutes} min {seconds:02} s"


@login_required
def labeling_time(request):
    form = TimeFilterForm(request.GET or None, viewer=request.user)
    chosen = form.cleaned_data if form.is_valid() else {}
    filters = selectors.TimeFilter(
        start=chosen.get("start"), end=chosen.get("end"),
        user_id=chosen["user"].pk if chosen.get("user") else None,
        project_id=chosen["project"].pk if chosen.get("project") else None,
    )  # fmt: skip
    tables = selectors.labeling_time(request.user, filters)
    for row in tables["per_day"] + tables["totals"]:
        row["duration"] = _duration(row["seconds"])
    query = urlencode({k: v for k, v in request.GET.items() if v and k != "download"})
    return render(request, "annotations/labeling_time.html", {"form": form, "tables": tables, "query": query})
