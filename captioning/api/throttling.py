"""Request rates per client. DRF's throttles read their rates once, at import; these read API_THROTTLE_RATES
on each request, so the settings (and tests) decide. The counts live in the shared cache (settings.CACHES), so
every server process counts the same requests; a client's address is captioning.sign_in.client_address."""

from django.conf import settings
from rest_framework import exceptions, throttling

from captioning.sign_in import client_address


class _SettingsRate:
    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request) -> str:
        return client_address(request)


class AnonymousRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    scope = "anonymous"


class UserRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    scope = "user"


class UploadRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    """Uploads decode images: their own, lower rate, on top of the general one."""

    scope = "uploads"


class SignInRateThrottle(_SettingsRate, throttling.SimpleRateThrottle):
    """Password guessing at the token endpoint, per client address, whoever the request is signed in as (a
    valid token sent along must not lift the limit on guessing someone else's password)."""

    scope = "sign_in"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class SignInLockedOut(exceptions.Throttled):
    """django-axes refused the attempt: too many failed sign-ins for the account or from the address."""

    default_code = "locked_out"
