from django import forms
from django.core.exceptions import ValidationError

from projects.attributes import definitions_parse
from projects.models import Project, Role


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["name", "description", "sync_labels"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        labels = {"sync_labels": "Synchronise labels"}


class ProjectCreateForm(ProjectForm):
    class Meta(ProjectForm.Meta):
        fields = ["name", "description"]


class LabelForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "New label"}))
    color = forms.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, widget=forms.TextInput(attrs={"type": "color"}))
    hotkey = forms.IntegerField(
        min_value=1, max_value=9, required=False, widget=forms.NumberInput(attrs={"placeholder": "Hotkey 1-9"})
    )
    keypoints = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.TextInput(attrs={"placeholder": "Keypoints, e.g. left eye, right eye"}),
    )

    attributes = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "Attributes, e.g. truncated: checkbox; colour: red | green"}),
    )

    def clean_attributes(self) -> list[dict]:
        try:
            return definitions_parse(self.cleaned_data["attributes"])
        except ValidationError as exc:
            raise forms.ValidationError(" ".join(exc.messages)) from None

    def clean_keypoints(self) -> list[str]:
        return [name.strip() for name in self.cleaned_data["keypoints"].split(",") if name.strip()]


class ProjectRoleForm(forms.Form):
    """A role the project offers: a server-wide one but Owner, or one of the project's own."""

    role = forms.ModelChoiceField(queryset=Role.objects.none(), empty_label=None)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        offered = Role.objects.for_project(project).exclude(project__isnull=True, name=Role.OWNER)
        self.fields["role"].queryset = offered.order_by("project_id", "name")


class MemberForm(ProjectRoleForm):
    email = forms.EmailField()
    field_order = ["email", "role"]


class RoleForm(ProjectRoleForm):
    pass
