from django.contrib.auth import views as auth_views
from django.urls import path

from captioning import views

urlpatterns = [
    path("", views.home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("galleries/", views.gallery_list, name="gallery-list"),
    path("galleries/new/", views.gallery_new, name="gallery-new"),
    path("explore/", views.gallery_public_list, name="gallery-public-list"),
    path("search/", views.search, name="search"),
    path("photos/", views.timeline, name="timeline"),
    path("photos/page.json", views.timeline_page, name="timeline-page"),
    path("help/translations/", views.translation_help, name="translation-help"),
    path("g/<str:public_id>/", views.gallery_detail, name="gallery-detail-short"),
    path("galleries/<str:public_id>/edit/", views.gallery_edit, name="gallery-edit"),
    path("galleries/<str:public_id>/delete/", views.gallery_remove, name="gallery-delete"),
    path("galleries/<str:public_id>/members/", views.gallery_member_add, name="gallery-member-add"),
    path(
        "galleries/<str:public_id>/members/<int:user_id>/remove/",
        views.gallery_member_delete,
        name="gallery-member-remove",
    ),
    path("galleries/<str:public_id>/upload/", views.photo_upload_view, name="photo-upload"),
    path("galleries/<str:public_id>/status.json", views.gallery_status, name="gallery-status"),
    path("galleries/<str:public_id>/retry-failed/", views.gallery_retry_failed, name="gallery-retry-failed"),
    path("g/<str:public_id>/<str:slug>/", views.gallery_detail, name="gallery-detail"),
    path("p/<uuid:photo_uuid>/", views.photo_detail, name="photo-detail"),
    path("p/<uuid:photo_uuid>/status.json", views.photo_status, name="photo-status"),
    path("p/<uuid:photo_uuid>/thumbnail.webp", views.photo_thumbnail, name="photo-thumbnail"),
    path("p/<uuid:photo_uuid>/image.webp", views.photo_image, name="photo-image"),
    path("p/<uuid:photo_uuid>/original", views.photo_original, name="photo-original"),
    path("p/<uuid:photo_uuid>/caption/", views.photo_caption_update, name="photo-caption-edit"),
    path("p/<uuid:photo_uuid>/recaption/", views.photo_recaption_view, name="photo-recaption"),
    path("p/<uuid:photo_uuid>/retry/", views.photo_retry_view, name="photo-retry"),
    path("p/<uuid:photo_uuid>/delete/", views.photo_delete_view, name="photo-delete"),
    path("p/<uuid:photo_uuid>/translate/", views.photo_translate, name="photo-translate"),
    path("p/<uuid:photo_uuid>/cover/", views.photo_make_cover, name="photo-make-cover"),
]
