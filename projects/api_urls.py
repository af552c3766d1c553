from django.urls import path

from projects import api

urlpatterns = [
    path("projects/", api.ProjectListApi.as_view(), name="api-projects"),
    path("projects/<int:project_id>/", api.ProjectDetailApi.as_view(), name="api-project"),
    path("projects/<int:project_id>/transfer-ownership/", api.ProjectTransferApi.as_view(), name="api-transfer"),
    path("projects/<int:project_id>/labels/", api.LabelListApi.as_view(), name="api-labels"),
    path("projects/<int:project_id>/labels/<int:label_id>/", api.LabelDetailApi.as_view(), name="api-label"),
    path("projects/<int:project_id>/members/", api.MemberListApi.as_view(), name="api-members"),
    path("projects/<int:project_id>/members/<int:user_id>/", api.MemberDetailApi.as_view(), name="api-member"),
    path("projects/<int:project_id>/invitations/", api.ProjectInvitationsApi.as_view(), name="api-invitations"),
    path(
        "projects/<int:project_id>/invitations/<int:invitation_id>/",
        api.ProjectInvitationApi.as_view(),
        name="api-invitation",
    ),
    path("invitations/", api.MyInvitationsApi.as_view(), name="api-my-invitations"),
    path("invitations/<int:invitation_id>/accept/", api.InvitationAcceptApi.as_view(), name="api-invitation-accept"),
    path("invitations/<int:invitation_id>/decline/", api.InvitationDeclineApi.as_view(), name="api-invitation-decline"),
    path("projects/<int:project_id>/images/", api.ImageListApi.as_view(), name="api-images"),
    path(
        "projects/<int:project_id>/images/validation/", api.ImageValidationApi.as_view(), name="api-images-validation"
    ),
    path("images/<int:image_id>/", api.ImageDetailApi.as_view(), name="api-image"),
    path("images/<int:image_id>/file/", api.ImageFileApi.as_view(), name="api-image-file"),
    path("images/<int:image_id>/thumbnail/", api.ImageThumbnailApi.as_view(), name="api-image-thumbnail"),
    path("roles/", api.RoleListApi.as_view(), name="api-roles"),
]
