"""What a request that fails gets: for an /api/ address the API's JSON error, for a page the project's own
error page. A signed-out visitor who follows a link to a page they may not see (a private gallery shared with
them) is asked to sign in and brought back there; the same happens for a page that does not exist, so the
answer tells no one which private addresses exist."""

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from captioning.api.errors import error_body

API_PREFIX = "/api/"


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error(400, "bad_request", "The request could not be understood.")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error(403, "permission_denied", str(exception) or "You may not do this.")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return _api_error(404, "not_found", "Not found.")
    if _signed_out_browser_visit(request):
        return redirect_to_login(request.get_full_path())
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Renders 500.html without a context: whatever failed (the database, a context processor) may fail again."""
    if request.path.startswith(API_PREFIX):
        return _api_error(500, "server_error", "Something went wrong on the server; the error was logged.")
    return defaults.server_error(request)


def _api_error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(error_body(status, code, message), status=status)


def _signed_out_browser_visit(request: HttpRequest) -> bool:
    """A person opening a page, not an image tag, a script's fetch or a form post: those get the plain 404."""
    user = getattr(request, "user", None)
    return (
        request.method == "GET"
        and user is not None
        and not user.is_authenticated
        and "text/html" in request.headers.get("Accept", "")
    )
