"""schemathesis against /api/schema/: requests generated from the schema the app serves, sent to the real
Django app (in-process, WSGI) as a signed-in owner, must never get a 500 and every response must match the
schema (status code documented, body valid, content type right). One test per operation; the number of
examples is bounded so CI stays quick (FUZZ_EXAMPLES searches harder)."""

import os

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from django.test import override_settings
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis import checks

from captioning.models import Gallery, ModelVersion
from captioning.services.galleries import gallery_create, gallery_member_set
from clippro_site.wsgi import application
from tests.api.conftest import caption, upload

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.missing_required_header,
    checks.unsupported_method,
    checks.allow_header_conformance,
    checks.ignored_auth,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))

# Loaded when the tests are collected, before there is a test database: the schema view reads none, but its
# throttle spends request budgets kept in the database, so no rate applies here.
with override_settings(API_THROTTLE_RATES={}):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture
def existing(db, people) -> dict:
    """The owner's token, and real values for every path parameter (the owner's gallery, photo, a member)."""
    owner = people["owner"]
    gallery = gallery_create(acting_user=owner, title="Fuzzed", visibility=Gallery.Visibility.PUBLIC)
    gallery_member_set(gallery=gallery, acting_user=owner, username="viewer", role="viewer")
    photo = upload(owner, gallery, seed=77)
    caption(photo, "a cat on a red sofa")
    model = ModelVersion.objects.create(name="fuzzed", checkpoint_path="/nowhere", config={"clip_model": "x"})
    return {
        "token": Token.objects.get_or_create(user=owner)[0].key,
        "path": {
            "public_id": gallery.public_id,
            "photo_uuid": str(photo.uuid),
            "user_id": people["viewer"].pk,
            "model_version_id": model.pk,
        },
    }


@pytest.fixture
def connection_kept():
    """As Django's test client does: a finished request must not close the test's (transactional) connection."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    derandomize=True,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_answers_as_its_schema_says(case, existing, connection_kept):
    # Every check on what the API answers. Not the two that judge how strict its input parsing is
    # (negative_data_rejection, positive_data_acceptance): DRF accepts 3 for a text field, and a
    # well-formed username that does not exist is a 400 the schema cannot foresee.
    case.call_and_validate(headers={"Authorization": f"Token {existing['token']}"}, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_on_existing_objects_answers_as_its_schema_says(case, existing, connection_kept):
    """The same with the path naming real objects, so generated bodies and queries reach the services
    (random ids mostly meet a 404)."""
    for name in case.path_parameters or {}:
        if name in existing["path"]:
            case.path_parameters[name] = existing["path"][name]
    case.call_and_validate(headers={"Authorization": f"Token {existing['token']}"}, checks=CHECKS)
