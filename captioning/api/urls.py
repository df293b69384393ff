from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from captioning.api import views
from captioning.api.errors import api_not_found

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("auth/token/", views.TokenApi.as_view(), name="api-token"),
    path("galleries/", views.GalleryListApi.as_view(), name="api-gallery-list"),
    path("galleries/<str:public_id>/", views.GalleryDetailApi.as_view(), name="api-gallery-detail"),
    path("galleries/<str:public_id>/members/", views.GalleryMemberListApi.as_view(), name="api-gallery-members"),
    path("galleries/<str:public_id>/photos/", views.GalleryPhotoListApi.as_view(), name="api-gallery-photos"),
    path(
        "galleries/<str:public_id>/members/<int:user_id>/",
        views.GalleryMemberDetailApi.as_view(),
        name="api-gallery-member",
    ),
    path("photos/", views.PhotoListApi.as_view(), name="api-photo-list"),
    path("photos/download/", views.PhotoSelectionDownloadApi.as_view(), name="api-photo-selection-download"),
    path("photos/recaption/", views.PhotoSelectionRecaptionApi.as_view(), name="api-photo-selection-recaption"),
    path("photos/delete/", views.PhotoSelectionDeleteApi.as_view(), name="api-photo-selection-delete"),
    path("photos/<uuid:photo_uuid>/", views.PhotoDetailApi.as_view(), name="api-photo-detail"),
    path("photos/<uuid:photo_uuid>/retry/", views.PhotoRetryApi.as_view(), name="api-photo-retry"),
    path("photos/<uuid:photo_uuid>/recaption/", views.PhotoRecaptionApi.as_view(), name="api-photo-recaption"),
    path("photos/<uuid:photo_uuid>/captions/", views.PhotoCaptionListApi.as_view(), name="api-photo-captions"),
    path(
        "photos/<uuid:photo_uuid>/translations/",
        views.PhotoTranslationListApi.as_view(),
        name="api-photo-translations",
    ),
    path("model-versions/", views.ModelVersionListApi.as_view(), name="api-model-versions"),
    path(
        "model-versions/<int:model_version_id>/activate/",
        views.ModelVersionActivateApi.as_view(),
        name="api-model-version-activate",
    ),
    path("queue/", views.QueueStatusApi.as_view(), name="api-queue"),
    path("search/", views.SearchApi.as_view(), name="api-search"),
    re_path(r"^.*$", api_not_found),
]
