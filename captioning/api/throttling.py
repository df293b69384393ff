"""Request rates per client. DRF's throttles read their rates once, at import; these read API_THROTTLE_RATES
on each request, so the settings (and tests) decide."""

from django.conf import settings
from rest_framework import throttling


class _SettingsRate:
    def get_rate(self):
        return settings.API_THROTTLE_RATES.get(self.scope)


class AnonymousRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    scope = "anonymous"


class UserRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    scope = "user"


class UploadRateThrottle(_SettingsRate, throttling.UserRateThrottle):
    """Uploads decode images: their own, lower rate, on top of the general one."""

    scope = "uploads"


class SignInRateThrottle(_SettingsRate, throttling.AnonRateThrottle):
    """Password guessing at the token endpoint, per client address."""

    scope = "sign_in"
