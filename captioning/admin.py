"""The staff dashboard in the Django admin.

- Caption review queue: current captions with their photo's thumbnail, worst first (guesses about photos unlike
  the model's training images, then lowest CLIPScore, then lowest model score), pending ones by default; approve
  or reject a row with its buttons or many rows with the actions, rewrite a caption in its row and Save. Who
  decided and when is kept on the caption.
- Photos: status and error, re-queue actions. Model versions: evaluation metrics, captions written, mean
  CLIPScore, and an activate action. Captioning queue and throughput: the worker's queue, recent failures
  and captions per hour (django-q2's own pages list every task).

Every action, and deleting, calls a service (captioning.services, captioning.jobs); nothing here writes on its own.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Avg, Count, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from captioning import jobs, selectors
from captioning.confidence import caption_unsure_notice
from captioning.models import (
    Caption,
    CaptioningActivity,
    CaptionReview,
    Gallery,
    GalleryMembership,
    GalleryPhoto,
    ModelVersion,
    Photo,
    Translation,
)
from captioning.search import image_search_backend
from captioning.services.galleries import gallery_delete_many
from captioning.services.model_versions import model_version_activate
from captioning.services.photos import photo_delete_many
from captioning.services.reviews import (
    caption_approve,
    caption_approve_many,
    caption_reject,
    caption_reject_many,
    caption_review_edit,
)
from captioning.views.files import file_response


def _thumbnail(photo_id: int, alt: str = ""):
    url = reverse("admin:captioning_photo_thumbnail", args=[photo_id])
    return format_html('<img src="{}" alt="{}" class="review-thumbnail" width="120" loading="lazy">', url, alt)


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

    def delete_model(self, request: HttpRequest, gallery: Gallery) -> None:
        gallery_delete_many(galleries=Gallery.objects.filter(pk=gallery.pk), acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Gallery]) -> None:
        gallery_delete_many(galleries=queryset, acting_user=request.user)


class GalleryPhotoInline(admin.TabularInline):
    """The galleries holding the photo; removing one here removes the photo from that gallery only."""

    model = GalleryPhoto
    extra = 0
    raw_id_fields = ["gallery", "added_by"]
    readonly_fields = ["added_at"]


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "original_filename",
        "owner",
        "status",
        "error_message",
        "attempts",
        "embedding_model",
        "created_at",
    ]
    list_display_links = ["original_filename"]
    list_filter = ["status", "format", "embedding_model", "created_at"]
    search_fields = ["original_filename", "owner__username", "sha256", "error_message"]
    raw_id_fields = ["owner", "embedding_model"]
    # The captioning job's fields change through the actions (captioning.jobs), never by hand.
    readonly_fields = [
        "uuid",
        "sha256",
        "status",
        "error_message",
        "failure_kind",
        "attempts",
        "claim_token",
        "claimed_at",
        "next_attempt_at",
        "requested_model",
        "requested_decoding",
        "created_at",
        "updated_at",
    ]
    actions = ["requeue_failed", "requeue"]
    list_select_related = ["owner", "embedding_model"]
    inlines = [GalleryPhotoInline]

    @admin.display(description="Photo")
    def thumbnail(self, photo: Photo):
        return _thumbnail(photo.pk, photo.original_filename)

    def delete_model(self, request: HttpRequest, photo: Photo) -> None:
        photo_delete_many(photos=Photo.objects.filter(pk=photo.pk), acting_user=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        photo_delete_many(photos=queryset, acting_user=request.user)

    @admin.action(description="Re-queue the failed ones of the selected photos")
    def requeue_failed(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        count = jobs.retry_failed(photos=queryset)
        self.message_user(request, f"{count} failed photo(s) queued again.", messages.SUCCESS)

    @admin.action(description="Caption the selected photos again with the active model (taken from a worker)")
    def requeue(self, request: HttpRequest, queryset: QuerySet[Photo]) -> None:
        count = jobs.requeue(photos=queryset)
        self.message_user(request, f"{count} photo(s) queued for a new caption.", messages.SUCCESS)

    def get_urls(self):
        thumbnail = path(
            "<int:photo_id>/thumbnail/",
            self.admin_site.admin_view(self.thumbnail_view),
            name="captioning_photo_thumbnail",
        )
        return [thumbnail, *super().get_urls()]

    def thumbnail_view(self, request: HttpRequest, photo_id: int):
        """Staff see any photo's thumbnail here (the site's own media URLs keep the visibility rule)."""
        if not self.has_view_permission(request) and not CaptionReviewAdmin.may_review(request):
            raise PermissionDenied
        photo = get_object_or_404(Photo, pk=photo_id)
        return file_response(photo.thumbnail, "image/webp")


class CaptionReviewStateFilter(admin.SimpleListFilter):
    """Pending by default: the queue is what is left to review."""

    title = "review state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [*Caption.ReviewState.choices, ("all", "All")]

    def choices(self, changelist):
        for value, title in self.lookup_choices:
            yield {
                "selected": (self.value() or Caption.ReviewState.PENDING) == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": title,
            }

    def queryset(self, request, queryset):
        state = self.value() or Caption.ReviewState.PENDING
        return queryset if state == "all" else queryset.filter(review_state=state)


@admin.register(CaptionReview)
class CaptionReviewAdmin(admin.ModelAdmin):
    list_display = [
        "thumbnail",
        "text",
        "familiarity_display",
        "clip_score_display",
        "score_display",
        "model_version",
        "review",
        "decision",
    ]
    list_display_links = None
    list_editable = ["text"]
    list_filter = [CaptionReviewStateFilter, "confident", "model_version", "source", "created_at"]
    search_fields = ["text", "photo__original_filename", "photo__owner__username"]
    ordering = selectors.CAPTION_REVIEW_ORDER
    list_per_page = 50
    actions = ["approve_selected", "reject_selected"]
    readonly_fields = [
        "photo",
        "source",
        "model_version",
        "decoding",
        "score",
        "clip_score",
        "familiarity",
        "confident",
        "created_by",
        "created_at",
        "review_state",
        "reviewed_by",
        "reviewed_at",
    ]
    fields = ["text", *readonly_fields]

    class Media:
        css = {"all": ["admin-review.css"]}

    def get_queryset(self, request):
        return selectors.caption_review_queue()

    @staticmethod
    def may_review(request: HttpRequest) -> bool:
        return selectors.caption_can_review(request.user)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return self.may_review(request)

    def has_view_permission(self, request, obj=None):
        return self.may_review(request) or super().has_view_permission(request, obj)

    @admin.display(description="Photo")
    def thumbnail(self, caption: Caption):
        """The thumbnail links to the photo's page on the site (its owner named in the link's title)."""
        return format_html(
            '<a href="{}" title="A photo of {} on the site">{}</a>',
            caption.photo.get_absolute_url(),
            caption.photo.owner.username,
            _thumbnail(caption.photo_id, caption.photo.original_filename),
        )

    @admin.display(description="Familiarity", ordering="confident")
    def familiarity_display(self, caption: Caption):
        value = "unknown" if caption.familiarity is None else f"{caption.familiarity:.3f}"
        if caption.confident:
            return value
        return format_html(
            '<span class="review-unsure" title="{}">{} · unsure</span>', caption_unsure_notice(caption), value
        )

    @admin.display(description="CLIPScore", ordering="clip_score")
    def clip_score_display(self, caption: Caption):
        return "—" if caption.clip_score is None else f"{caption.clip_score:.3f}"

    @admin.display(description="Model score", ordering="score")
    def score_display(self, caption: Caption):
        return "—" if caption.score is None else f"{caption.score:.2f}"

    @admin.display(description="State", ordering="review_state")
    def review(self, caption: Caption):
        who = caption.reviewed_by.username if caption.reviewed_by else None
        when = caption.reviewed_at.strftime("%Y-%m-%d %H:%M") if caption.reviewed_at else None
        detail = f" by {who}, {when}" if who and when else ""
        return format_html(
            '<span class="review-state review-state--{}">{}</span>{}',
            caption.review_state,
            caption.get_review_state_display(),
            detail,
        )

    @admin.display(description="Decide")
    def decision(self, caption: Caption):
        # Buttons of the changelist's own form (it carries the CSRF token), sent to this row's address.
        buttons = [
            (reverse(f"admin:captioning_captionreview_{action}", args=[caption.pk]), label, action)
            for action, label in (("approve", "Approve"), ("reject", "Reject"))
        ]
        return format_html_join(
            " ",
            '<button type="submit" class="button review-button review-button--{2}" formaction="{0}" '
            'formmethod="post" data-review="{2}">{1}</button>',
            ((url, label, action) for url, label, action in buttons),
        )

    def save_model(self, request, obj, form, change):
        """A caption rewritten here (its row, or its page) becomes a new current caption, edited in review."""
        if change and "text" in form.changed_data:
            try:
                caption_review_edit(caption=Caption.objects.get(pk=obj.pk), acting_user=request.user, text=obj.text)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)

    def save_related(self, request, form, formsets, change):
        pass  # nothing related is edited here; the service wrote everything

    def log_change(self, request, obj, message):
        pass  # the caption keeps who edited it; the admin's log would point at the replaced row

    @admin.action(description="Approve the selected captions")
    def approve_selected(self, request, queryset):
        count = caption_approve_many(captions=queryset, acting_user=request.user)
        self.message_user(request, f"{count} caption(s) approved.", messages.SUCCESS)

    @admin.action(description="Reject the selected captions")
    def reject_selected(self, request, queryset):
        count = caption_reject_many(captions=queryset, acting_user=request.user)
        self.message_user(request, f"{count} caption(s) rejected.", messages.SUCCESS)

    def get_urls(self):
        def decide(service, verb):
            @require_POST
            def view(request: HttpRequest, caption_id: int):
                caption = get_object_or_404(Caption, pk=caption_id)
                service(caption=caption, acting_user=request.user)
                self.message_user(request, f"Caption “{caption.text[:60]}” {verb}.", messages.SUCCESS)
                back = request.META.get("HTTP_REFERER") or reverse("admin:captioning_captionreview_changelist")
                return HttpResponseRedirect(back)

            return self.admin_site.admin_view(view)

        return [
            path(
                "<int:caption_id>/approve/",
                decide(caption_approve, "approved"),
                name="captioning_captionreview_approve",
            ),
            path(
                "<int:caption_id>/reject/", decide(caption_reject, "rejected"), name="captioning_captionreview_reject"
            ),
            *super().get_urls(),
        ]


@admin.register(Caption)
class CaptionAdmin(admin.ModelAdmin):
    """Every caption, history included (read-only: captions change through the review queue or the site)."""

    list_display = [
        "text",
        "photo",
        "source",
        "model_version",
        "score",
        "clip_score",
        "familiarity",
        "confident",
        "is_current",
        "review_state",
        "reviewed_by",
        "reviewed_at",
        "created_at",
    ]
    list_filter = ["source", "is_current", "confident", "review_state", "model_version"]
    search_fields = ["text"]
    raw_id_fields = ["photo", "created_by", "reviewed_by"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(Translation)
class TranslationAdmin(admin.ModelAdmin):
    list_display = ["caption", "language", "status", "provider", "updated_at"]
    list_filter = ["status", "language", "provider"]
    raw_id_fields = ["caption"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "page",
        "is_active",
        "clip_model",
        "metrics_summary",
        "caption_count",
        "mean_clip_score",
        "created_at",
    ]
    list_filter = ["is_active"]
    readonly_fields = ["is_active", "config", "metrics", "familiarity_reference", "created_at"]
    actions = ["activate"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                caption_count=Count("captions", distinct=True),
                mean_clip_score=Avg("captions__clip_score"),
            )
        )

    @admin.display(description="On the site")
    def page(self, model_version: ModelVersion):
        return format_html('<a href="{}">model page</a>', model_version.get_absolute_url())

    @admin.display(description="Evaluation metrics")
    def metrics_summary(self, model_version: ModelVersion):
        metrics = (model_version.metrics or {}).get("metrics", model_version.metrics) or {}
        shown = [(name, value) for name, value in metrics.items() if isinstance(value, int | float)]
        if not shown:
            return "—"
        return format_html_join(", ", "{} {}", ((name, f"{value:.3f}") for name, value in shown))

    @admin.display(description="Captions", ordering="caption_count")
    def caption_count(self, model_version):
        return model_version.caption_count

    @admin.display(description="Mean CLIPScore", ordering="mean_clip_score")
    def mean_clip_score(self, model_version):
        return "—" if model_version.mean_clip_score is None else f"{model_version.mean_clip_score:.3f}"

    @admin.action(description="Activate the selected model (new photos get its captions)")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return
        model_version = model_version_activate(model_version=queryset.get())
        self.message_user(request, f"{model_version.name} is now the active model.", messages.SUCCESS)


@admin.register(CaptioningActivity)
class CaptioningActivityAdmin(admin.ModelAdmin):
    """One page: photos by status, the worker queue, reviews waiting, throughput and the latest failures."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        context = {
            **self.admin_site.each_context(request),
            "title": "Captioning queue and throughput",
            "opts": self.model._meta,
            "status": selectors.queue_status(request.user),
            "per_hour": selectors.caption_throughput_by_hour(hours=24),
            "image_search_backend": image_search_backend(),
        }
        return TemplateResponse(request, "admin/captioning/activity.html", context)
