"""Every /api/ error has the documented shape {"error": {"status", "code", "message", "fields"}}, a bug (500)
included, with DEBUG on or off; never Django's HTML pages."""

import json

import pytest
from django.test import RequestFactory
from django.urls import reverse

from captioning import selectors
from clippro_site import errors


def assert_api_error(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"status", "code", "message", "fields"}
    assert (body["error"]["status"], body["error"]["code"]) == (status, code)
    return body["error"]


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_in_an_api_view_answers_a_json_500_without_a_traceback(
    api_client_for, people, monkeypatch, settings, debug, caplog
):
    settings.DEBUG = debug

    def broken(**arguments):
        raise RuntimeError("secret internals: /srv/clippro/settings.py line 12")

    monkeypatch.setattr(selectors, "gallery_rows_for_viewer", broken)
    client = api_client_for(people["owner"])
    client.raise_request_exception = False

    response = client.get(reverse("api-gallery-list"))

    error = assert_api_error(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert error["message"] == "Something went wrong on the server; the error was logged."
    assert "secret internals" in caplog.text  # the operator still gets the traceback, in the log


@pytest.mark.parametrize("debug", [False, True])
def test_an_unknown_api_address_answers_a_json_404(api_client_for, people, settings, debug):
    settings.DEBUG = debug
    response = api_client_for(people["owner"]).post("/api/nonexistent/", {"a": 1}, format="json")
    assert_api_error(response, 404, "not_found")


def test_the_sites_500_handler_answers_json_under_api():
    """For an error outside the API views (a middleware), handler500 keeps the API's format under /api/."""
    response = errors.server_error(RequestFactory().get("/api/galleries/"))
    assert_api_error(response, 500, "server_error")


@pytest.mark.parametrize(
    "address",
    [
        lambda photo: reverse("api-gallery-list"),
        lambda photo: reverse("api-photo-list"),
        lambda photo: reverse("api-search") + "?q=dog",
        lambda photo: reverse("api-photo-captions", args=[photo.uuid]),
        lambda photo: reverse("api-photo-translations", args=[photo.uuid]),
        lambda photo: reverse("api-model-versions"),
        lambda photo: reverse("api-queue"),
    ],
)
def test_a_browser_gets_each_api_list_as_the_browsable_page(api_client_for, people, address):
    """A person exploring the API in a browser (Accept: text/html) gets DRF's browsable page, never a 500."""
    from captioning.services.galleries import gallery_create
    from tests.api.conftest import upload

    photo = upload(people["owner"], gallery_create(acting_user=people["owner"], title="Browsed"), seed=3)
    client = api_client_for(people["owner"])
    client.raise_request_exception = False

    response = client.get(address(photo), HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
