"""Projects, labels, members and images over REST. Every view starts at projects.permissions."""

from __future__ import annotations

from pathlib import PurePosixPath

from django.db.models import prefetch_related_objects
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import filters
from config.api import PlainListField, StrictSerializer
from projects import services, uploads
from projects.files import stored_response
from projects.imaging import MEDIA_TYPES
from projects.models import Image, Invitation, Membership, Role
from projects.permissions import (
    access_image,
    access_project,
    invitation_for_invitee,
    invitation_for_manager,
    project_permissions,
    projects_for_user,
    require_owner,
)
from projects.selectors import label_get, membership_get

# --- output shapes shared by several views ----------------------------------------------------


class ProjectOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    sync_labels = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class LabelOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField()
    hotkey = serializers.IntegerField(allow_null=True)
    keypoint_template = serializers.ListField(child=serializers.CharField())
    attributes = serializers.ListField(child=serializers.DictField(), help_text="[{name, type, choices}]")


class MemberOutput(serializers.Serializer):
    user_id = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")
    email = serializers.SerializerMethodField(help_text="Only for those who manage the project's members.")
    role = serializers.CharField(source="role.name")
    is_owner = serializers.SerializerMethodField()

    def get_email(self, membership: Membership) -> str | None:
        return membership.user.email if self.context.get("show_emails") else None

    def get_is_owner(self, membership: Membership) -> bool:
        return membership.user_id == membership.project.owner_id


class InvitationOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    project_name = serializers.CharField(source="project.name")
    email = serializers.EmailField()
    role = serializers.CharField(source="role.name")
    invited_by = serializers.CharField(source="invited_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()


class ImageOutput(serializers.Serializer):
    id = serializers.IntegerField()
    project_id = serializers.IntegerField()
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    sha256 = serializers.CharField()
    is_validation = serializers.BooleanField()
    labels = serializers.SerializerMethodField()
    default_label = serializers.SerializerMethodField()
    file_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()

    def get_labels(self, image: Image) -> list[str]:
        return [c.label.name for c in image.classifications.all()]

    def get_default_label(self, image: Image) -> str | None:
        return next((c.label.name for c in image.classifications.all() if c.is_default), None)

    def get_file_url(self, image: Image) -> str:
        return f"/api/images/{image.id}/file/"

    def get_thumbnail_url(self, image: Image) -> str:
        return f"/api/images/{image.id}/thumbnail/"


def _role(name: str, project) -> Role:
    """A role the project offers (a server-wide one, or the project's own), by name."""
    role = Role.objects.for_project(project).filter(name=name).first()
    if role is None:
        raise serializers.ValidationError({"role": [f"No role named {name!r}."]})
    return role


# --- projects -------------------------------------------------------------------------------


class ProjectListApi(APIView):
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(responses={200: ProjectOutput(many=True)})
    def get(self, request):
        projects = projects_for_user(request.user).select_related("owner").order_by("-created_at", "-id")
        return Response(ProjectOutput(projects, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: ProjectOutput})
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(owner=request.user, **data.validated_data)
        return Response(ProjectOutput(project).data, status=status.HTTP_201_CREATED)


class ProjectDetailApi(APIView):
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=200, required=False)
        description = serializers.CharField(required=False, allow_blank=True)
        sync_labels = serializers.BooleanField(required=False)

    @extend_schema(responses={200: ProjectOutput})
    def get(self, request, project_id: int):
        return Response(ProjectOutput(access_project(request.user, project_id)).data)

    @extend_schema(request=InputSerializer, responses={200: ProjectOutput})
    def patch(self, request, project_id: int):
        project = access_project(request.user, project_id, "change_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(ProjectOutput(services.project_update(project=project, **data.validated_data)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id: int):
        services.project_delete(project=access_project(request.user, project_id, "delete_project"))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProjectTransferApi(APIView):
    class InputSerializer(StrictSerializer):
        user_id = serializers.IntegerField()

    @extend_schema(request=InputSerializer, responses={200: ProjectOutput})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "manage_members_project")
        require_owner(request.user, project)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = (
            Membership.objects.select_related("user")
            .filter(project=project, user_id=data.validated_data["user_id"])
            .first()
        )
        if membership is None:
            raise serializers.ValidationError({"user_id": ["Ownership can only pass to a member of the project."]})
        project = services.project_transfer_ownership(project=project, new_owner=membership.user, by=request.user)
        return Response(ProjectOutput(project).data)


# --- labels ---------------------------------------------------------------------------------


class LabelListApi(APIView):
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100)
        color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
        hotkey = serializers.IntegerField(min_value=1, max_value=9, required=False, allow_null=True)
        keypoint_template = serializers.ListField(
            child=serializers.CharField(max_length=50), required=False, max_length=50
        )
        attributes = PlainListField(required=False, help_text="[{name, type: text|number|checkbox|choice, choices}]")

    @extend_schema(responses={200: LabelOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        return Response(LabelOutput(project.labels.all(), many=True).data)

    @extend_schema(request=InputSerializer, responses={201: LabelOutput})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "manage_labels_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        label = services.label_create(project=project, **data.validated_data)
        return Response(LabelOutput(label).data, status=status.HTTP_201_CREATED)


class LabelDetailApi(APIView):
    class InputSerializer(StrictSerializer):
        name = serializers.CharField(max_length=100, required=False)
        color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False)
        hotkey = serializers.IntegerField(min_value=1, max_value=9, required=False, allow_null=True)
        keypoint_template = serializers.ListField(
            child=serializers.CharField(max_length=50), required=False, max_length=50
        )
        attributes = PlainListField(required=False, help_text="[{name, type: text|number|checkbox|choice, choices}]")

    @extend_schema(responses={200: LabelOutput})
    def get(self, request, project_id: int, label_id: int):
        return Response(LabelOutput(label_get(user=request.user, project_id=project_id, label_id=label_id)).data)

    @extend_schema(request=InputSerializer, responses={200: LabelOutput})
    def patch(self, request, project_id: int, label_id: int):
        label = label_get(user=request.user, project_id=project_id, label_id=label_id, perm="manage_labels_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(LabelOutput(services.label_update(label=label, **data.validated_data)).data)

    @extend_schema(
        parameters=[OpenApiParameter("confirm", bool, description="Delete even though annotations use it.")],
        responses={204: None, 409: dict},
    )
    def delete(self, request, project_id: int, label_id: int):
        label = label_get(user=request.user, project_id=project_id, label_id=label_id, perm="manage_labels_project")
        try:
            services.label_delete(label=label, confirm=request.query_params.get("confirm") in {"1", "true", "yes"})
        except services.LabelInUse as in_use:
            body = {
                "detail": f"{in_use} Send ?confirm=true to delete them all.",
                "annotations": in_use.annotations,
                "classifications": in_use.classifications,
            }
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- members and roles ----------------------------------------------------------------------


class RoleListApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        description = serializers.CharField()
        permissions = serializers.SerializerMethodField()

        def get_permissions(self, role: Role) -> list[str]:
            return sorted(role.codenames())

    @extend_schema(
        parameters=[OpenApiParameter("project", int, description="Also this project's own roles (members only).")],
        responses={200: OutputSerializer(many=True)},
    )
    def get(self, request):
        """The roles every project offers; with `project`, that project's own roles too."""
        roles = Role.objects.server_wide()
        raw = request.query_params.get("project", "")
        if raw:
            if not (raw.isascii() and raw.isdigit()):
                raise serializers.ValidationError({"project": ["Give a project id."]})
            roles = Role.objects.for_project(access_project(request.user, int(raw)))
        return Response(self.OutputSerializer(roles.with_permissions(), many=True).data)


class MemberListApi(APIView):
    class InputSerializer(StrictSerializer):
        email = serializers.EmailField()
        role = serializers.CharField()

    class InvitedOutput(serializers.Serializer):
        detail = serializers.CharField()

    @extend_schema(responses={200: MemberOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        members = project.memberships.select_related("user", "role", "project")
        context = {"show_emails": "manage_members_project" in project_permissions(request.user, project)}
        return Response(MemberOutput(members, many=True, context=context).data)

    @extend_schema(request=InputSerializer, responses={202: InvitedOutput})
    def post(self, request, project_id: int):
        """Share by invitation: the answer is the same whether or not the address has an account."""
        project = access_project(request.user, project_id, "manage_members_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"]
        services.invitation_create(
            project=project, email=email, role=_role(data.validated_data["role"], project), invited_by=request.user
        )
        return Response({"detail": services.INVITED.format(email=email)}, status=status.HTTP_202_ACCEPTED)


class ProjectInvitationsApi(APIView):
    """The project's pending invitations, for those who manage its members."""

    @extend_schema(responses={200: InvitationOutput(many=True)})
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id, "manage_members_project")
        pending = project.invitations.select_related("project", "role", "invited_by")
        return Response(InvitationOutput(pending, many=True).data)


class ProjectInvitationApi(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, project_id: int, invitation_id: int):
        """Withdraw a pending invitation."""
        services.invitation_delete(
            invitation=invitation_for_manager(request.user, project_id, invitation_id), by=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class MyInvitationsApi(APIView):
    """Invitations to the requesting user's e-mail address, waiting to be accepted or declined."""

    @extend_schema(responses={200: InvitationOutput(many=True)})
    def get(self, request):
        return Response(InvitationOutput(Invitation.objects.for_user(request.user), many=True).data)


class InvitationAcceptApi(APIView):
    @extend_schema(request=None, responses={200: MemberOutput})
    def post(self, request, invitation_id: int):
        membership = services.invitation_accept(
            invitation=invitation_for_invitee(request.user, invitation_id), user=request.user
        )
        return Response(MemberOutput(membership, context={"show_emails": True}).data)


class InvitationDeclineApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request, invitation_id: int):
        services.invitation_delete(invitation=invitation_for_invitee(request.user, invitation_id), by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberDetailApi(APIView):
    class InputSerializer(StrictSerializer):
        role = serializers.CharField()

    @extend_schema(responses={200: MemberOutput})
    def get(self, request, project_id: int, user_id: int):
        membership = membership_get(user=request.user, project_id=project_id, member_id=user_id, perm="view_project")
        context = {"show_emails": "manage_members_project" in project_permissions(request.user, membership.project)}
        return Response(MemberOutput(membership, context=context).data)

    @extend_schema(request=InputSerializer, responses={200: MemberOutput})
    def patch(self, request, project_id: int, user_id: int):
        membership = membership_get(
            user=request.user, project_id=project_id, member_id=user_id, perm="manage_members_project"
        )
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, role=_role(data.validated_data["role"], membership.project), by=request.user
        )
        return Response(MemberOutput(membership, context={"show_emails": True}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, project_id: int, user_id: int):
        services.membership_remove(
            membership=membership_get(
                user=request.user, project_id=project_id, member_id=user_id, perm="manage_members_project"
            ),
            by=request.user,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- images ---------------------------------------------------------------------------------


class ImagePageOutput(serializers.Serializer):
    """One page of images, as DRF's page-number pagination gives it."""

    count = serializers.IntegerField(help_text="Images matching the filter, on every page.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = ImageOutput(many=True)


class ImagePagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


class ImageListApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    class UploadInput(StrictSerializer):
        files = serializers.ListField(
            child=serializers.FileField(allow_empty_file=True),
            allow_empty=False,
            error_messages={"empty": "Send at least one file in the `files` field."},
        )
        labels = serializers.CharField(required=False, allow_blank=True, default="")

    class UploadOutput(serializers.Serializer):
        stored = ImageOutput(many=True)
        rejected = serializers.ListField(child=serializers.DictField())
        labels_not_created = serializers.ListField(
            child=serializers.CharField(), help_text="Labels left off: the uploader may not create labels."
        )
        notice = serializers.CharField(help_text="Why labels were left off, for a person; empty when none were.")

    class UploadRefused(serializers.Serializer):
        """Nothing was stored: the same lists as a 201 (each refusal with its reason), or the bad fields."""

        stored = serializers.ListField(child=serializers.DictField(), required=False)
        rejected = serializers.ListField(child=serializers.DictField(), required=False)
        labels_not_created = serializers.ListField(child=serializers.CharField(), required=False)
        notice = serializers.CharField(required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("labels", str, description='Label expression, e.g. "(cat OR dog) AND NOT indoor".'),
            OpenApiParameter("type", str, enum=list(filters.TYPES)),
            OpenApiParameter("status", str, enum=list(filters.STATUSES), description="For the requesting user."),
            OpenApiParameter("predicted", str, enum=["yes", "no"], description="Has a model's predictions, or none."),
            OpenApiParameter("predicted_label", str, description="Has a prediction of this label."),
            OpenApiParameter("score_below", float, description="Predicted, but nothing scores this much (0-1)."),
        ],
        responses={200: ImagePageOutput},
    )
    def get(self, request, project_id: int):
        project = access_project(request.user, project_id)
        images = filters.images_filter(
            Image.objects.for_project(project),
            project=project,
            user=request.user,
            **{key: request.query_params.get(key, "") for key in filters.FILTER_KEYS},
        )
        images = images.prefetch_related("classifications__label").order_by("id")
        paginator = ImagePagination()
        page = paginator.paginate_queryset(images, request, view=self)
        return paginator.get_paginated_response(ImageOutput(page, many=True).data)

    @extend_schema(request={"multipart/form-data": UploadInput}, responses={201: UploadOutput, 400: UploadRefused})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "upload_project")
        fields = {key: ",".join(request.POST.getlist(key)) for key in request.POST}
        data = self.UploadInput(data={**fields, "files": request.FILES.getlist("files")})
        data.is_valid(raise_exception=True)
        labels = [name for name in data.validated_data["labels"].split(",") if name.strip()]
        result = uploads.images_upload(
            project=project, user=request.user, files=data.validated_data["files"], labels=labels
        )
        stored = Image.objects.filter(pk__in=[i.pk for i in result.stored]).prefetch_related("classifications__label")
        body = {
            "stored": ImageOutput(stored.order_by("id"), many=True).data,
            "rejected": [{"name": r.name, "reason": r.reason} for r in result.rejected],
            "labels_not_created": result.labels_not_created,
            "notice": result.notice,
        }
        return Response(body, status=status.HTTP_201_CREATED if result.stored else status.HTTP_400_BAD_REQUEST)


class ImageDetailApi(APIView):
    class InputSerializer(StrictSerializer):
        is_validation = serializers.BooleanField(help_text="In the user-defined validation set.")

    @extend_schema(responses={200: ImageOutput})
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        prefetch_related_objects([image], "classifications__label")
        return Response(ImageOutput(image).data)

    @extend_schema(request=InputSerializer, responses={200: ImageOutput})
    def patch(self, request, image_id: int):
        image = access_image(request.user, image_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.images_set_validation(project=image.project, image_ids=[image.pk], **data.validated_data)
        image.refresh_from_db()
        prefetch_related_objects([image], "classifications__label")
        return Response(ImageOutput(image).data)

    @extend_schema(responses={204: None})
    def delete(self, request, image_id: int):
        image = access_image(request.user, image_id, "delete_images_project")
        services.images_delete(project=image.project, image_ids=[image.pk])
        return Response(status=status.HTTP_204_NO_CONTENT)


class ImageValidationApi(APIView):
    """Add many images to the user-defined validation set, or take them out (spec 000)."""

    class InputSerializer(StrictSerializer):
        images = serializers.ListField(child=serializers.IntegerField(), allow_empty=False, max_length=100_000)
        is_validation = serializers.BooleanField()

    @extend_schema(request=InputSerializer, responses={200: dict})
    def post(self, request, project_id: int):
        project = access_project(request.user, project_id, "annotate_project")
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changed = services.images_set_validation(
            project=project, image_ids=data.validated_data["images"], is_validation=data.validated_data["is_validation"]
        )
        return Response({"changed": changed})


class ImageFileApi(APIView):
    """The image's bytes, for those who may see its project. Content never changes, so cache it."""

    field = "file"

    @extend_schema(
        responses={
            (200, "image/*"): OpenApiTypes.BINARY,
            302: OpenApiResponse(description="With object storage: a redirect to a short-lived presigned URL."),
        }
    )
    def get(self, request, image_id: int):
        image = access_image(request.user, image_id)
        stored = getattr(image, self.field)
        # The type comes from what we decoded and stored, never from the name the uploader chose:
        # a valid PNG named x.html must not be served as HTML.
        media_type = MEDIA_TYPES[PurePosixPath(stored.name).suffix.lower()]
        filename = image.name.rsplit("/", 1)[-1] if self.field == "file" else f"{image.pk}.webp"
        response = stored_response(
            stored.name,
            filename=filename,
            content_type=media_type,
            cache_control="private, max-age=31536000, immutable",
        )
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


class ImageThumbnailApi(ImageFileApi):
    field = "thumbnail"
