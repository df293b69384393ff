"""A plain admin for looking at the data; the review dashboard comes with the REST API issue."""

from django.contrib import admin

from captioning.models import Caption, Gallery, GalleryMembership, ModelVersion, Photo, Translation


class GalleryMembershipInline(admin.TabularInline):
    model = GalleryMembership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Gallery)
class GalleryAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "visibility", "updated_at"]
    list_filter = ["visibility"]
    search_fields = ["title", "owner__username"]
    raw_id_fields = ["owner"]
    inlines = [GalleryMembershipInline]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = ["uuid", "original_filename", "owner", "gallery", "status", "attempts", "created_at"]
    list_filter = ["status", "format"]
    search_fields = ["original_filename", "owner__username", "sha256"]
    raw_id_fields = ["owner", "gallery", "requested_model", "embedding_model"]
    readonly_fields = ["uuid", "sha256", "claim_token", "claimed_at", "created_at", "updated_at"]


@admin.register(Caption)
class CaptionAdmin(admin.ModelAdmin):
    list_display = ["text", "photo", "source", "model_version", "score", "is_current", "created_at"]
    list_filter = ["source", "is_current", "model_version"]
    search_fields = ["text"]
    raw_id_fields = ["photo", "created_by"]


@admin.register(Translation)
class TranslationAdmin(admin.ModelAdmin):
    list_display = ["caption", "language", "status", "provider", "updated_at"]
    list_filter = ["status", "language", "provider"]
    raw_id_fields = ["caption"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "checkpoint_path", "is_active", "created_at"]
    list_filter = ["is_active"]
