"""Request rates per client (API_THROTTLE_RATES, read on each request, so the settings and tests decide). Each
rate is a budget in captioning.request_rates, shared by every server process; a client is its user when signed
in, else its address (captioning.sign_in.client_address)."""

from django.conf import settings
from django.http import HttpRequest
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from captioning import request_rates
from captioning.sign_in import client_address

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _RateThrottle(BaseThrottle):
    scope: str

    def client(self, request: HttpRequest) -> str | None:
        """Whose budget the request spends; None for requests this rate does not apply to."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        self.wait_seconds = None
        rate = settings.API_THROTTLE_RATES.get(self.scope)
        client = self.client(request)
        if rate is None or client is None:
            return True
        limit, period = parse_rate(rate)
        self.wait_seconds = request_rates.spend(f"{self.scope}:{client}", limit=limit, period=period)
        return self.wait_seconds is None

    def wait(self) -> float | None:
        return self.wait_seconds


def parse_rate(rate: str) -> tuple[int, int]:
    """ "600/minute" -> (600, 60): DRF's notation (the unit's first letter counts)."""
    number, _slash, unit = rate.partition("/")
    if not number.isdigit() or int(number) < 1 or unit[:1] not in PERIODS:
        raise ValueError(f"A request rate is N/second, N/minute, N/hour or N/day with N >= 1, not {rate!r}.")
    return int(number), PERIODS[unit[0]]


class AnonymousRateThrottle(_RateThrottle):
    scope = "anonymous"

    def client(self, request) -> str | None:
        return None if request.user.is_authenticated else client_address(request)


class UserRateThrottle(_RateThrottle):
    scope = "user"

    def client(self, request) -> str | None:
        return str(request.user.pk) if request.user.is_authenticated else None


class UploadRateThrottle(UserRateThrottle):
    """Uploads decode images: their own, lower rate, on top of the general one."""

    scope = "uploads"


class SignInRateThrottle(_RateThrottle):
    """Password guessing at the token endpoint, per client address, whoever the request is signed in as (a
    valid token sent along must not lift the limit on guessing someone else's password)."""

    scope = "sign_in"

    def client(self, request) -> str | None:
        return client_address(request)


class SignInLockedOut(exceptions.Throttled):
    """django-axes refused the attempt: too many failed sign-ins for the account or from the address."""

    default_code = "locked_out"
