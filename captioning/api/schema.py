"""The OpenAPI schema documents every answer an operation can give, errors included (in the one error format),
so a client (and schemathesis in CI) can rely on it."""

from drf_spectacular.openapi import AutoSchema

from captioning.api.errors import ErrorSerializer

ERRORS = {
    "400": "The request is not valid (the fields say why).",
    "401": "Not signed in (send a token or a session cookie).",
    "403": "Signed in, but not allowed to do this.",
    "404": "Nothing here, or nothing you may see.",
    "405": "This method is not allowed here.",
    "406": "The requested answer format is not offered.",
    "413": "The request is too large.",
    "415": "The request body's format is not accepted.",
    "429": "Too many requests; the Retry-After header says when to try again.",
}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, description in ERRORS.items():
            if code not in responses:
                response = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                response["description"] = description
                responses[code] = response
        return responses
