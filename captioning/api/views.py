"""API views: each parses its input, calls one selector or service, and presents the result.

Visibility is the pages' rule (captioning.selectors): what a client may not see answers 404, what it sees but
may not change answers 403, and an anonymous client asked to sign in gets 401.
"""

import functools

from django.conf import settings
from django.contrib.auth import authenticate
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, generics, status
from rest_framework.authtoken.models import Token
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAdminUser, IsAuthenticated, IsAuthenticatedOrReadOnly
from rest_framework.response import Response
from rest_framework.views import APIView

from captioning import search, selectors
from captioning.api import serializers as api
from captioning.api.filters import (
    GalleryFilter,
    PhotoFilter,
    names_a_filter,
    photo_filter_gallery,
    photo_filter_narrow,
    photo_filters,
)
from captioning.api.pagination import ApiPagination
from captioning.api.throttling import SignInLockedOut, SignInRateThrottle, UploadRateThrottle
from captioning.downloads import photo_zip_stream
from captioning.images import UploadRefused
from captioning.models import GALLERY_PUBLIC_ID_PATTERN, Gallery, ModelVersion, Photo
from captioning.services.galleries import (
    gallery_create,
    gallery_delete,
    gallery_member_remove,
    gallery_member_set,
    gallery_update,
)
from captioning.services.model_versions import model_version_activate
from captioning.services.photos import (
    AlbumResult,
    UploadResult,
    photo_caption_edit,
    photo_delete,
    photo_gallery_add,
    photo_gallery_remove,
    photo_recaption,
    photo_retry,
    photo_upload,
)
from captioning.services.selection import (
    photo_selection_check_size,
    photo_selection_delete,
    photo_selection_recaption,
)
from captioning.services.translations import translation_request, translation_retry
from captioning.sign_in import lockout_message, retry_after_seconds, sign_in_locked_out
from captioning.translators import SOURCE_LANGUAGE

PUBLIC_ID = OpenApiParameter("public_id", str, OpenApiParameter.PATH, pattern=rf"^{GALLERY_PUBLIC_ID_PATTERN}$")


def _gallery(request, public_id: str) -> Gallery:
    try:
        return selectors.gallery_get_for_viewer(user=request.user, public_id=public_id)
    except Gallery.DoesNotExist:
        raise exceptions.NotFound("No such gallery.") from None


def _photo(request, photo_uuid) -> Photo:
    try:
        return selectors.photo_get_for_viewer(user=request.user, photo_uuid=photo_uuid)
    except Photo.DoesNotExist:
        raise exceptions.NotFound("No such photo.") from None


def _require_gallery_owner(request, gallery: Gallery) -> None:
    if not selectors.gallery_can_edit(request.user, gallery):
        raise exceptions.PermissionDenied("Only the owner of this gallery can do this.")


def _model_version(data: dict) -> ModelVersion | None:
    """The model version a re-caption request names (None: the active one)."""
    if data.get("model_version") is None:
        return None
    model_version = selectors.model_version_list().filter(pk=data["model_version"]).first()
    if model_version is None:
        raise exceptions.ValidationError({"model_version": ["No such model version."]})
    return model_version


def _valid(serializer_class, data, **kwargs) -> dict:
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# Sign-in ---------------------------------------------------------------------------------------------------


class TokenApi(APIView):
    """A token for the `Authorization: Token <key>` header (POST), or its revocation (DELETE)."""

    throttle_classes = [SignInRateThrottle]

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(request=api.TokenInputSerializer, responses={200: api.TokenSerializer}, auth=[])
    def post(self, request):
        data = _valid(api.TokenInputSerializer, request.data)
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None and sign_in_locked_out(request):
            seconds = retry_after_seconds(request)
            raise SignInLockedOut(wait=seconds, detail=lockout_message(seconds))
        if user is None or not user.is_active:
            raise exceptions.AuthenticationFailed("Wrong username or password.")
        token, _created = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request):
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# Galleries -------------------------------------------------------------------------------------------------


class GalleryListApi(generics.GenericAPIView):
    """Galleries you may open: yours, those shared with you, and public ones (others' unlisted ones only by
    their address)."""

    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = api.GallerySerializer
    filterset_class = GalleryFilter

    def get_queryset(self):
        galleries = selectors.gallery_list_visible_to(self.request.user).order_by(*selectors.GALLERY_LIST_ORDER)
        return selectors.gallery_list_with_covers(galleries)

    @extend_schema(responses=api.GallerySerializer(many=True))
    def get(self, request):
        narrow = self.filter_queryset if names_a_filter(request, GalleryFilter) else None
        which = {"acting_user": request.user, "narrow": narrow}
        rows = self.paginator.paginate_queryset(
            None,
            request,
            view=self,
            count=functools.partial(selectors.gallery_count_for_viewer, **which),
            read_page=functools.partial(selectors.gallery_rows_for_viewer, **which),
        )
        roles = selectors.gallery_roles_by_id(request.user, {row["id"]: row["owner_id"] for row in rows})
        return self.get_paginated_response(api.gallery_rows_representation(rows, roles))

    @extend_schema(request=api.GalleryInputSerializer, responses={201: api.GallerySerializer})
    def post(self, request):
        gallery = gallery_create(acting_user=request.user, **_valid(api.GalleryInputSerializer, request.data))
        return Response(
            api.GallerySerializer(gallery, context={"request": request}).data, status=status.HTTP_201_CREATED
        )


@extend_schema(parameters=[PUBLIC_ID])
class GalleryDetailApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=api.GallerySerializer)
    def get(self, request, public_id: str):
        return Response(api.GallerySerializer(_gallery(request, public_id), context={"request": request}).data)

    @extend_schema(request=api.GalleryInputSerializer, responses=api.GallerySerializer)
    def put(self, request, public_id: str):
        return self._update(request, public_id, partial=False)

    @extend_schema(request=api.GalleryInputSerializer(partial=True), responses=api.GallerySerializer)
    def patch(self, request, public_id: str):
        return self._update(request, public_id, partial=True)

    def _update(self, request, public_id: str, *, partial: bool):
        gallery = _gallery(request, public_id)
        _require_gallery_owner(request, gallery)
        data = _valid(api.GalleryInputSerializer, request.data, partial=partial)
        values = {"title": gallery.title, "description": gallery.description, "visibility": gallery.visibility}
        gallery = gallery_update(gallery=gallery, acting_user=request.user, **{**values, **data})
        return Response(api.GallerySerializer(gallery, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, public_id: str):
        gallery = _gallery(request, public_id)
        gallery_delete(gallery=gallery, acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[PUBLIC_ID])
class GalleryMemberListApi(APIView):
    """The gallery's members, for its owner."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=api.MemberSerializer(many=True))
    def get(self, request, public_id: str):
        gallery = _gallery(request, public_id)
        _require_gallery_owner(request, gallery)
        return Response(api.MemberSerializer(selectors.gallery_members(gallery), many=True).data)

    @extend_schema(request=api.MemberInputSerializer, responses={200: api.MemberSerializer})
    def post(self, request, public_id: str):
        """Adds a member by username, or changes their role."""
        gallery = _gallery(request, public_id)
        _require_gallery_owner(request, gallery)
        membership = gallery_member_set(
            gallery=gallery, acting_user=request.user, **_valid(api.MemberInputSerializer, request.data)
        )
        return Response(api.MemberSerializer(membership).data)


@extend_schema(parameters=[PUBLIC_ID])
class GalleryMemberDetailApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request, public_id: str, user_id: int):
        gallery = _gallery(request, public_id)
        _require_gallery_owner(request, gallery)
        gallery_member_remove(gallery=gallery, acting_user=request.user, user_id=user_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


# Photos ----------------------------------------------------------------------------------------------------


class PhotoListApi(generics.GenericAPIView):
    """Photos you may see, newest first. Upload one or many files into a gallery with a multipart POST."""

    permission_classes = [IsAuthenticatedOrReadOnly]
    serializer_class = api.PhotoSerializer
    filterset_class = PhotoFilter
    parser_classes = [MultiPartParser, FormParser]

    def get_throttles(self):
        extra = [UploadRateThrottle()] if self.request.method == "POST" else []
        return [*super().get_throttles(), *extra]

    def get_queryset(self):
        self.filters = photo_filters(self.request)
        photos = selectors.photo_list_for_viewer(
            acting_user=self.request.user, gallery_public_id=photo_filter_gallery(self.filters)
        )
        return photos.order_by(*selectors.PHOTO_LIST_ORDER)

    def filter_queryset(self, queryset):
        # The FilterSet that chose the selector's photos narrows them: one FilterSet per request, not two.
        return photo_filter_narrow(self.filters, queryset)

    @extend_schema(responses=api.PhotoSerializer(many=True))
    def get(self, request):
        self.filters = photo_filters(request)
        which = {
            "acting_user": request.user,
            "gallery_public_id": photo_filter_gallery(self.filters),
            "narrow": None if self.filters is None else functools.partial(photo_filter_narrow, self.filters),
        }
        page = self.paginator.paginate_queryset(
            None,
            request,
            view=self,
            count=functools.partial(selectors.photo_count_for_viewer, **which),
            read_page=functools.partial(selectors.photo_rows_for_viewer, **which),
        )
        rows = selectors.photo_rows_with_details(page, acting_user=request.user)
        return self.get_paginated_response(api.photo_rows_representation(rows))

    @extend_schema(
        request={"multipart/form-data": api.UploadInputSerializer},
        responses={
            201: OpenApiResponse(
                api.UploadResultsSerializer, description="At least one file was uploaded or added to the gallery"
            ),
            200: OpenApiResponse(api.UploadResultsSerializer, description="Every file was in this gallery already"),
        },
    )
    def post(self, request):
        """Each file gets its own outcome: uploaded, added (a photo of yours with these very bytes, which you may
        see, is now also in this gallery: that photo), duplicate (that photo is in this gallery already) or refused
        (with the reason; nothing of it is kept). When every file is refused the answer is 400."""
        limit = settings.UPLOAD_MAX_BYTES * settings.API_UPLOAD_MAX_FILES + 1024 * 1024
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return _too_large(limit)
        data = _valid(
            api.UploadInputSerializer, {"gallery": request.data.get("gallery"), "files": request.FILES.getlist("files")}
        )
        if len(data["files"]) > settings.API_UPLOAD_MAX_FILES:
            raise exceptions.ValidationError(
                {"files": [f"Send at most {settings.API_UPLOAD_MAX_FILES} files at once."]}
            )
        try:
            gallery = selectors.gallery_get_for_viewer(user=request.user, public_id=data["gallery"])
        except Gallery.DoesNotExist:
            raise exceptions.NotFound("No such gallery.") from None
        if not selectors.gallery_can_upload(request.user, gallery):
            raise exceptions.PermissionDenied("You cannot upload photos to this gallery.")
        results = [self._upload_one(request, gallery, upload) for upload in data["files"]]
        if all(result["outcome"] == "refused" for result in results):
            raise exceptions.ValidationError(
                {"files": [f"{result['filename']}: {result['error']}" for result in results]}
            )
        changed = any(result["outcome"] in (UploadResult.UPLOADED, UploadResult.ADDED) for result in results)
        return Response({"results": results}, status=status.HTTP_201_CREATED if changed else status.HTTP_200_OK)

    @staticmethod
    def _upload_one(request, gallery: Gallery, upload) -> dict:
        try:
            outcome = photo_upload(acting_user=request.user, gallery=gallery, file=upload, filename=upload.name)
        except UploadRefused as refusal:
            return {"filename": upload.name, "outcome": "refused", "error": str(refusal), "photo": None}
        finally:
            upload.close()
        photo = api.PhotoSerializer(outcome.photo, context={"request": request}).data
        return {"filename": upload.name, "outcome": str(outcome.result), "error": None, "photo": photo}


class GalleryPhotoListApi(APIView):
    """The gallery as an album: add photos of your library to it, or take photos out of it."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        parameters=[PUBLIC_ID],
        request=api.GalleryPhotosInputSerializer,
        responses={
            200: api.GalleryPhotoResultsSerializer,
            404: OpenApiResponse(description="No such gallery, or none of the photos is yours to add"),
        },
    )
    def post(self, request, public_id):
        """Adds your photos to the gallery (you own it or edit it). Only a photo's owner adds it to a gallery,
        and only one they may see; any other id, someone else's photo included, is not_found. Each id gets its
        outcome, in the order sent; when every one is not_found the answer is 404."""
        gallery = _gallery(request, public_id)
        photo_uuids = _valid(api.GalleryPhotosInputSerializer, request.data)["photos"]
        outcomes = photo_gallery_add(gallery=gallery, photo_uuids=photo_uuids, acting_user=request.user)
        if all(outcome == AlbumResult.NOT_FOUND for outcome in outcomes.values()):
            raise exceptions.NotFound("None of these photos is one of yours that you may add.")
        return Response(_album_results(outcomes))

    @extend_schema(
        parameters=[PUBLIC_ID], request=api.GalleryPhotosInputSerializer, responses=api.GalleryPhotoResultsSerializer
    )
    def delete(self, request, public_id):
        """Takes photos out of the gallery (its owner and editors): they stay in their owner's library and in
        their other galleries. Deleting a photo (DELETE /api/photos/{id}/) removes it everywhere."""
        gallery = _gallery(request, public_id)
        photo_uuids = _valid(api.GalleryPhotosInputSerializer, request.data)["photos"]
        outcomes = photo_gallery_remove(gallery=gallery, photo_uuids=photo_uuids, acting_user=request.user)
        return Response(_album_results(outcomes))


def _album_results(outcomes: dict) -> dict:
    return {
        "results": [{"photo": str(photo_uuid), "outcome": str(outcome)} for photo_uuid, outcome in outcomes.items()]
    }


def _too_large(limit: int) -> Response:
    from captioning.api.errors import error_body

    return Response(
        error_body(413, "too_large", f"The request is larger than {limit / 2**20:.0f} MB."),
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class PhotoDetailApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=api.PhotoSerializer)
    def get(self, request, photo_uuid):
        return Response(api.PhotoSerializer(_photo(request, photo_uuid), context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request, photo_uuid):
        photo_delete(photo=_photo(request, photo_uuid), acting_user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PhotoRetryApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={202: api.PhotoSerializer})
    def post(self, request, photo_uuid):
        """Queues a failed photo again."""
        photo = photo_retry(photo=_photo(request, photo_uuid), acting_user=request.user)
        return Response(api.PhotoSerializer(photo, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class PhotoRecaptionApi(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(request=api.RecaptionInputSerializer, responses={202: api.PhotoSerializer})
    def post(self, request, photo_uuid):
        """Queues a new caption, with another model or other decoding settings; the current caption stays until
        the new one is written."""
        photo = _photo(request, photo_uuid)
        data = _valid(api.RecaptionInputSerializer, request.data)
        photo = photo_recaption(
            photo=photo, acting_user=request.user, model_version=_model_version(data), decoding=data.get("decoding")
        )
        return Response(api.PhotoSerializer(photo, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class FirstRendererNegotiation(BaseContentNegotiation):
    """Answers in the view's first renderer (JSON) whatever the client accepts: a zip download's errors are JSON
    for a browser's form too, and a client that asks for application/zip is not refused before the zip."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class PhotoSelectionDownloadApi(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser]
    content_negotiation_class = FirstRendererNegotiation

    @extend_schema(
        request=api.PhotoSelectionInputSerializer,
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="The zip, streamed")},
    )
    def post(self, request):
        """A zip of the photos you may see among `photos` (the others are left out; none: 404): the originals of
        your own photos, the copy without metadata of the others. At most ZIP_MAX_PHOTOS photos. The site's grids
        post it as a form."""
        photo_uuids = _valid(api.PhotoSelectionInputSerializer, request.data)["photos"]
        photo_selection_check_size(photo_uuids, settings.ZIP_MAX_PHOTOS, at_most="go into one zip")
        photos = selectors.photo_list_selected(acting_user=request.user, photo_uuids=photo_uuids)
        if not photos:
            raise exceptions.NotFound("None of these photos exists, or you may not see them.")
        archive = photo_zip_stream(acting_user=request.user, photos=photos)
        response = StreamingHttpResponse(archive, content_type="application/zip")
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=_zip_name())
        response["Cache-Control"] = "private, no-store"
        return response


def _zip_name() -> str:
    return f"clip-pro-photos-{timezone.localtime():%Y-%m-%d-%H%M%S}.zip"


class PhotoSelectionRecaptionApi(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(request=api.SelectionRecaptionInputSerializer, responses=api.SelectionResultsSerializer)
    def post(self, request):
        """Queues each of `photos` you may change (yours, or in your gallery) to be captioned again, with
        `model_version` and `decoding` as for one photo; each gets `queued` or `forbidden`."""
        data = _valid(api.SelectionRecaptionInputSerializer, request.data)
        outcome = photo_selection_recaption(
            acting_user=request.user,
            photo_uuids=data["photos"],
            model_version=_model_version(data),
            decoding=data.get("decoding"),
        )
        return Response(api.SelectionResultsSerializer(outcome).data)


class PhotoSelectionDeleteApi(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(request=api.PhotoSelectionInputSerializer, responses=api.SelectionResultsSerializer)
    def post(self, request):
        """Deletes each of `photos` you may delete (yours, or in your gallery); each gets `deleted` or
        `forbidden`."""
        photo_uuids = _valid(api.PhotoSelectionInputSerializer, request.data)["photos"]
        outcome = photo_selection_delete(acting_user=request.user, photo_uuids=photo_uuids)
        return Response(api.SelectionResultsSerializer(outcome).data)


class PhotoCaptionListApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=api.CaptionSerializer(many=True))
    def get(self, request, photo_uuid):
        """Every caption the photo had, the newest first; one is current."""
        photo = _photo(request, photo_uuid)
        return Response(api.CaptionSerializer(selectors.caption_history(photo), many=True).data)

    @extend_schema(request=api.CaptionEditInputSerializer, responses={201: api.CaptionSerializer})
    def post(self, request, photo_uuid):
        """Your own wording becomes the current caption (photo's owner and gallery's owner)."""
        photo = _photo(request, photo_uuid)
        caption = photo_caption_edit(
            photo=photo, acting_user=request.user, **_valid(api.CaptionEditInputSerializer, request.data)
        )
        return Response(api.CaptionSerializer(caption).data, status=status.HTTP_201_CREATED)


class PhotoTranslationListApi(APIView):
    permission_classes = [IsAuthenticatedOrReadOnly]

    @extend_schema(responses=api.TranslationSerializer(many=True))
    def get(self, request, photo_uuid):
        """The translations of the current caption."""
        caption = selectors.caption_current(_photo(request, photo_uuid))
        translations = caption.translations.all() if caption else []
        return Response(api.TranslationSerializer(translations, many=True).data)

    @extend_schema(
        request=api.TranslationInputSerializer,
        responses={
            202: OpenApiResponse(api.TranslationSerializer, description="Queued (or already there: see status)")
        },
    )
    def post(self, request, photo_uuid):
        """Asks for the current caption in another language; a worker translates it and stores it."""
        caption = selectors.caption_current(_photo(request, photo_uuid))
        if caption is None:
            raise exceptions.NotFound("This photo has no caption yet.")
        data = _valid(api.TranslationInputSerializer, request.data)
        if data["language"] == SOURCE_LANGUAGE:
            raise exceptions.ValidationError({"language": ["Captions are written in English already."]})
        translation = translation_request(caption=caption, language=data["language"])
        if data["retry"] and translation.status == translation.Status.FAILED:
            translation = translation_retry(translation=translation)
        return Response(api.TranslationSerializer(translation).data, status=status.HTTP_202_ACCEPTED)


# Models, the queue, search -----------------------------------------------------------------------------------


class ModelVersionListApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=api.ModelVersionSerializer(many=True))
    def get(self, request):
        """The captioning models, with their evaluation metrics; one is active."""
        return Response(api.ModelVersionSerializer(selectors.model_version_list(), many=True).data)


class ModelVersionActivateApi(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses=api.ModelVersionSerializer)
    def post(self, request, model_version_id: int):
        """Staff: new photos are captioned by this model from now on."""
        model_version = selectors.model_version_list().filter(pk=model_version_id).first()
        if model_version is None:
            raise exceptions.NotFound("No such model version.")
        return Response(api.ModelVersionSerializer(model_version_activate(model_version=model_version)).data)


class QueueStatusApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=api.QueueStatusSerializer)
    def get(self, request):
        """Your photos by status and the length of the task queue; staff also get every photo, the pending
        reviews, the throughput and the latest task failures."""
        return Response(api.QueueStatusSerializer(selectors.queue_status(request.user)).data)


class SearchPagination(ApiPagination):
    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["summary"] = self.results.summary
        response.data["image_search"] = self.results.image_search
        response.data["image_cutoffs"] = self.results.image_cutoffs
        response.data["notes"] = self.results.notes
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["properties"]["summary"] = {
            "type": "string",
            "description": "What the search page says: 'N best matches', or 'No photos match well'",
        }
        schema["properties"]["image_search"] = {
            "type": "boolean",
            "description": "Whether the CLIP part ran (it needs an embedded photo and a loadable model)",
        }
        schema["properties"]["image_cutoffs"] = {
            "type": "object",
            "additionalProperties": {"type": "number"},
            "description": "By the name of the model whose CLIP embedded the query: the cosine a photo needed to be "
            "found by image (the model's floor, or its margin below the best photo). Photos found only by image "
            "score at least this; others are found by the words of their captions",
        }
        schema["properties"]["notes"] = {"type": "array", "items": {"type": "string"}}
        schema["required"] = [*schema.get("required", []), "summary", "image_search", "image_cutoffs", "notes"]
        return schema

    def paginate_queryset(self, queryset, request, view=None):
        self.results = queryset
        return super().paginate_queryset(queryset, request, view)


class SearchApi(generics.GenericAPIView):
    """Photos you may see that match `q` well, ranked: by CLIP (the query against the photos' image embeddings,
    above the model's cut-off) and by the words of their captions in every stored language, in one list."""

    permission_classes = [AllowAny]
    pagination_class = SearchPagination
    serializer_class = api.SearchHitSerializer
    filter_backends = []

    def get_queryset(self) -> QuerySet[Photo]:
        """What search ranks: the photos the user may see (the browsable API asks for it to build its forms)."""
        return selectors.photo_list_visible_to(self.request.user)

    @extend_schema(parameters=[api.SearchInputSerializer], responses=api.SearchHitSerializer(many=True))
    def get(self, request):
        query = _valid(api.SearchInputSerializer, request.query_params)["q"]
        results = search.photo_search(user=request.user, query=query)
        page = self.paginate_queryset(results)
        return self.get_paginated_response(api.search_hit_rows_representation(page))
