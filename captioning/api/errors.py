"""One error format for every API error:

    {"error": {"status": 404, "code": "not_found", "message": "No such photo.", "fields": {}}}

`fields` maps an input field to its messages when the request was invalid. Services raise Django's
ValidationError and PermissionDenied, and uploads UploadRefused; they become 400, 403 and 400 here. Any other
exception is a 500 in the same format (clippro_site/errors.py does the same for errors outside the API views).
"""

import logging

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from captioning.images import UploadRefused

logger = logging.getLogger(__name__)


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


def error_body(status_code: int, code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"status": status_code, "code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_detail(exc))
    elif isinstance(exc, UploadRefused):
        exc = exceptions.ValidationError({"file": [str(exc)]})
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound(str(exc) if isinstance(exc, Http404) and str(exc) else None)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = exception_handler(exc, context)
    if response is None:
        return _unexpected_error(exc, context)
    response.data = _as_error(exc, response.status_code)
    return response


def _unexpected_error(exc: Exception, context) -> Response:
    """A bug or an outage: logged with its traceback, answered in the API's format (even with DEBUG on, where
    Django would show its debug page), never with details of the server."""
    request = context.get("request")
    logger.error("API request %s failed", request.path if request else "?", exc_info=exc)
    set_rollback()
    return Response(
        error_body(
            status.HTTP_500_INTERNAL_SERVER_ERROR,
            "server_error",
            "Something went wrong on the server; the error was logged.",
        ),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _as_error(exc: exceptions.APIException, status_code: int) -> dict:
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        if isinstance(detail, dict):
            fields = {name: _messages(value) for name, value in detail.items()}
            general = fields.pop("non_field_errors", [])
            message = " ".join(general) or "The request is not valid: " + "; ".join(
                f"{name}: {' '.join(texts)}" for name, texts in fields.items()
            )
            return error_body(status_code, "invalid", message, fields)
        return error_body(status_code, "invalid", " ".join(_messages(detail)) or "The request is not valid.")
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    return error_body(status_code, str(code), " ".join(_messages(exc.detail)))


def _messages(value) -> list[str]:
    if isinstance(value, dict):
        return [f"{key}: {message}" for key, item in value.items() for message in _messages(item)]
    if isinstance(value, list | tuple):
        return [message for item in value for message in _messages(item)]
    return [str(value)]


def _django_validation_detail(error: DjangoValidationError):
    if hasattr(error, "error_dict"):
        return {name: messages for name, messages in error.message_dict.items()}
    return {"non_field_errors": error.messages}


@csrf_exempt  # it changes nothing; without this a POST would get the CSRF failure page (HTML) instead
def api_not_found(request: HttpRequest, *args, **kwargs) -> JsonResponse:
    """Any /api/ address that names nothing: a 404 in the API's format (not the site's HTML page)."""
    return JsonResponse(
        error_body(status.HTTP_404_NOT_FOUND, "not_found", f"There is no API endpoint at {request.path}."),
        status=status.HTTP_404_NOT_FOUND,
    )
