"""Who a request is signed in as: the session in the database (clippro_site/sessions.py) and its user, read afresh
on every request, so a change made anywhere (a log-out, the admin, another server process) counts at once."""

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

PASSWORD = "a-Long-passw0rd"


def signed_in_as(client: Client) -> str | None:
    """The name the page header shows, or None when the page asks to log in."""
    response = client.get(reverse("gallery-list"))
    if response.status_code == 302:
        return None
    html = response.content.decode()
    return html.split('<span class="site-user__name">', 1)[1].split("<", 1)[0]


def logged_in_client(username: str) -> Client:
    """Signed in through the log-in page, as a browser is."""
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    assert response.status_code == 302
    return client


def test_a_session_signs_its_user_in_until_it_expires(alice):
    client = logged_in_client("alice")
    assert signed_in_as(client) == "alice"
    Session.objects.update(expire_date=timezone.now() - timezone.timedelta(seconds=1))
    assert signed_in_as(client) is None


def test_logging_out_ends_the_session_for_every_browser_that_holds_it(alice):
    first = logged_in_client("alice")
    second = Client()
    second.cookies[settings.SESSION_COOKIE_NAME] = first.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in_as(second) == "alice"
    first.post(reverse("logout"))
    assert signed_in_as(second) is None


def test_a_session_deleted_elsewhere_signs_nobody_in(alice, bob):
    alices, bobs = logged_in_client("alice"), logged_in_client("bob")
    Session.objects.filter(session_key=alices.cookies[settings.SESSION_COOKIE_NAME].value).delete()
    assert (signed_in_as(alices), signed_in_as(bobs)) == (None, "bob")


def test_a_new_password_or_a_deactivated_account_signs_the_user_out(alice, bob):
    alices, bobs = logged_in_client("alice"), logged_in_client("bob")
    alice.set_password("another-Long-passw0rd")
    alice.save()
    get_user_model().objects.filter(pk=bob.pk).update(is_active=False)
    assert (signed_in_as(alices), signed_in_as(bobs)) == (None, None)


def test_a_renamed_user_is_shown_by_the_new_name_at_once(alice):
    client = logged_in_client("alice")
    assert signed_in_as(client) == "alice"
    get_user_model().objects.filter(pk=alice.pk).update(username="alicia")
    assert signed_in_as(client) == "alicia"


def test_an_unknown_session_key_is_never_adopted(settings, alice):
    """A session cookie no session has (made up, or planted by someone else) signs nobody in, and what the visit
    stores goes under a new key."""
    settings.TRANSLATION_PROVIDER = "google"  # so ?lang=fr is offered and stored in the session
    client = Client()
    planted = "plantedkey0123456789abcdefghijk"
    client.cookies[settings.SESSION_COOKIE_NAME] = planted
    response = client.get(reverse("gallery-public-list"), {"lang": "fr"})
    assert response.status_code == 200
    new_key = response.cookies[settings.SESSION_COOKIE_NAME].value
    assert new_key != planted
    assert Session.objects.filter(session_key=new_key).exists()
    assert not Session.objects.filter(session_key=planted).exists()


def test_the_statements_every_signed_in_page_runs_are_prepared_on_postgresql(alice, gallery):
    """The session, the user and the gallery list are planned once per connection, not on every request."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    client = logged_in_client("alice")
    for _ in range(3):
        assert client.get(reverse("gallery-list")).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans FROM pg_prepared_statements WHERE NOT from_sql")
        prepared = cursor.fetchall()

    def planned_once_and_run_for_every_request(table: str) -> bool:
        return any(f'FROM "{table}" ' in f"{text} " and generic_plans >= 3 for text, generic_plans in prepared)

    tables = ("django_session", "auth_user", "captioning_gallery")
    assert {table: planned_once_and_run_for_every_request(table) for table in tables} == dict.fromkeys(tables, True)
