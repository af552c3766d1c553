from django.urls import path

from projects import views

app_name = "projects"
urlpatterns = [
    path("", views.project_list, name="list"),
    path("<int:project_id>/", views.project_detail, name="detail"),
    path("<int:project_id>/images/delete/", views.images_delete, name="images-delete"),
    path("<int:project_id>/images/label/", views.label_selected, name="label-selected"),
    path("<int:project_id>/images/validation/", views.images_validation, name="images-validation"),
    path("<int:project_id>/settings/", views.project_settings, name="settings"),
    path("<int:project_id>/delete/", views.project_delete, name="delete"),
    path("<int:project_id>/labels/", views.label_create, name="label-create"),
    path("<int:project_id>/images/labels/", views.images_label, name="images-label"),
    path(
        "<int:project_id>/images/accept-predictions/",
        views.images_predictions_accept,
        name="images-predictions-accept",
    ),
    path("<int:project_id>/labels/<int:label_id>/edit/", views.label_edit, name="label-edit"),
    path("<int:project_id>/labels/<int:label_id>/delete/", views.label_delete, name="label-delete"),
    path("<int:project_id>/members/", views.member_add, name="member-add"),
    path("<int:project_id>/members/<int:user_id>/role/", views.member_change, name="member-change"),
    path("<int:project_id>/members/<int:user_id>/remove/", views.member_remove, name="member-remove"),
    path("<int:project_id>/members/<int:user_id>/owner/", views.ownership_transfer, name="ownership-transfer"),
    path(
        "<int:project_id>/invitations/<int:invitation_id>/withdraw/",
        views.invitation_withdraw,
        name="invitation-withdraw",
    ),
    path(
        "invitations/<int:invitation_id>/<str:answer>/",
        views.invitation_answer,
        name="invitation-answer",
    ),
]
