from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("captioning.api.urls")),
    path("", include("captioning.urls")),
]

handler400 = "clippro_site.errors.bad_request"
handler403 = "clippro_site.errors.permission_denied"
handler404 = "clippro_site.errors.page_not_found"
handler500 = "clippro_site.errors.server_error"
