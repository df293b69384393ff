"""Sign-in limits: password guesses are counted per account and per client address, whatever else the request
carries (a forged X-Forwarded-For, someone's valid token), on the token endpoint and the log-in page alike, and
the counts are shared by every server process."""

import io
import os

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from tests.api.conftest import PASSWORD

LIMIT = 3


@pytest.fixture
def sign_in_limits(settings):
    """Lockouts after LIMIT failures; the per-address request rate out of the way unless a test sets it."""
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.TRUSTED_PROXY_COUNT = 0


def token_request(client: APIClient, username: str, password: str, **headers):
    return client.post(reverse("api-token"), {"username": username, "password": password}, format="json", **headers)


def assert_locked_out(response) -> None:
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert (error["status"], error["code"], error["fields"]) == (429, "locked_out", {})
    assert "Too many failed sign-ins" in error["message"] and "Try again in 15 minutes" in error["message"]
    assert response["Retry-After"] == "900"


# (a) A forged X-Forwarded-For -------------------------------------------------------------------------------


def test_a_new_x_forwarded_for_on_each_guess_does_not_make_a_new_client(people, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "sign_in": "3/minute"}
    client = APIClient()
    statuses = [
        token_request(client, "owner", "guess", HTTP_X_FORWARDED_FOR=f"203.0.113.{guess}").status_code
        for guess in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


def test_guesses_at_many_accounts_from_one_address_lock_that_address(people, sign_in_limits):
    client = APIClient()
    for guess, username in enumerate(["owner", "viewer"]):
        assert token_request(client, username, "guess", HTTP_X_FORWARDED_FOR=f"198.51.100.{guess}").status_code == 401
    assert_locked_out(token_request(client, "stranger", "guess", HTTP_X_FORWARDED_FOR="198.51.100.2"))
    assert_locked_out(token_request(client, "carol", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.99"))
    # Another address is not locked out (carol's account is not: it had no failures).
    assert token_request(client, "carol", PASSWORD, REMOTE_ADDR="192.0.2.7").status_code == 200


def test_behind_a_trusted_proxy_the_address_it_saw_counts_not_what_the_client_wrote(people, sign_in_limits, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = APIClient()
    for guess, username in enumerate(["owner", "viewer", "stranger"]):
        forged = f"10.9.9.{guess}, 198.51.100.20"  # the client wrote the first entry, our proxy the last
        expected = 401 if guess < LIMIT - 1 else 429
        assert token_request(client, username, "guess", HTTP_X_FORWARDED_FOR=forged).status_code == expected
    assert_locked_out(token_request(client, "carol", PASSWORD, HTTP_X_FORWARDED_FOR="10.0.0.1, 198.51.100.20"))
    assert token_request(client, "carol", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.21").status_code == 200


# (b) Someone's valid token sent along ------------------------------------------------------------------------


def test_a_valid_token_does_not_lift_the_sign_in_rate(people, api_client_for, settings):
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "sign_in": "3/minute"}
    client = api_client_for(people["stranger"])
    statuses = [token_request(client, "owner", f"guess-{guess}").status_code for guess in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert client.get(reverse("api-gallery-list")).status_code == 200  # the rest of the API is not limited


def test_a_valid_token_does_not_lift_the_lockout(people, api_client_for, sign_in_limits):
    client = api_client_for(people["stranger"])
    for guess in range(LIMIT - 1):
        assert token_request(client, "owner", f"guess-{guess}").status_code == 401
    assert_locked_out(token_request(client, "owner", "guess-last"))
    assert_locked_out(token_request(client, "owner", PASSWORD))


# Per account, from anywhere ----------------------------------------------------------------------------------


def test_guesses_at_one_account_from_many_addresses_lock_that_account(people, sign_in_limits):
    client = APIClient()
    for guess in range(LIMIT - 1):
        assert token_request(client, "owner", "guess", REMOTE_ADDR=f"192.0.2.{guess}").status_code == 401
    assert_locked_out(token_request(client, "owner", "guess", REMOTE_ADDR="192.0.2.99"))
    assert_locked_out(token_request(client, "owner", PASSWORD, REMOTE_ADDR="192.0.2.200"))
    assert token_request(client, "viewer", PASSWORD, REMOTE_ADDR="192.0.2.201").status_code == 200


def test_an_administrator_lifts_a_lock_with_axes_reset_username(people, sign_in_limits):
    client = APIClient()
    for guess in range(LIMIT):
        token_request(client, "owner", "guess", REMOTE_ADDR=f"192.0.2.{guess}")
    assert_locked_out(token_request(client, "owner", PASSWORD, REMOTE_ADDR="192.0.2.100"))
    call_command("axes_reset_username", "owner", stdout=io.StringIO())
    assert token_request(client, "owner", PASSWORD, REMOTE_ADDR="192.0.2.100").status_code == 200


# (c) The log-in page ---------------------------------------------------------------------------------------------


def test_the_log_in_page_locks_out_and_says_when_to_try_again(client, people, sign_in_limits):
    for _ in range(LIMIT - 1):
        response = client.post(reverse("login"), {"username": "owner", "password": "guess"})
        assert response.status_code == 200 and b"didn't match" in response.content
    assert client.post(reverse("login"), {"username": "owner", "password": "guess"}).status_code == 429
    response = client.post(reverse("login"), {"username": "owner", "password": PASSWORD})
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert "Too many failed sign-ins for this account or from this address. Try again in 15 minutes." in page
    assert "You can try again from" in page
    assert "_auth_user_id" not in client.session  # the right password did not sign in


def test_failures_on_the_log_in_page_and_the_api_add_up(people, sign_in_limits, client):
    assert client.post(reverse("login"), {"username": "owner", "password": "guess"}).status_code == 200
    assert client.post(reverse("login"), {"username": "owner", "password": "guess"}).status_code == 200
    assert_locked_out(token_request(APIClient(), "owner", "guess", REMOTE_ADDR="192.0.2.50"))
    assert_locked_out(token_request(APIClient(), "owner", PASSWORD, REMOTE_ADDR="192.0.2.51"))


# (d) Shared by every server process ----------------------------------------------------------------------------

CACHES = [
    "database",
    pytest.param(
        "redis", marks=pytest.mark.skipif(not os.environ.get("REDIS_TEST_URL"), reason="REDIS_TEST_URL is not set")
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("cache", CACHES)
def test_two_server_processes_share_request_counts_and_lockouts(people, start_web_server, cache):
    """Two gunicorns on the same database (and Redis): requests alternate between them, and each limit is
    reached after its number of requests in all, not that number per process."""
    shared = {"REDIS_URL": os.environ["REDIS_TEST_URL"]} if cache == "redis" else {}
    if shared:
        import redis

        redis.Redis.from_url(shared["REDIS_URL"]).flushdb()
    limits = {"API_THROTTLE_ANONYMOUS": "4/minute", "API_THROTTLE_SIGN_IN": "1000/minute", "SIGN_IN_FAILURE_LIMIT": "3"}
    servers = [start_web_server(**limits, **shared).base_url for _ in range(2)]

    statuses = [requests.get(f"{servers[index % 2]}/api/galleries/", timeout=30).status_code for index in range(6)]
    assert statuses == [200, 200, 200, 200, 429, 429]

    guesses = [
        requests.post(
            f"{servers[index % 2]}/api/auth/token/", json={"username": "owner", "password": "guess"}, timeout=30
        )
        for index in range(4)
    ]
    assert [guess.status_code for guess in guesses] == [401, 401, 429, 429]
    assert guesses[-1].json()["error"]["code"] == "locked_out"
