"""The API's JSON: the very bytes DRF's JSONRenderer writes, written by orjson wherever orjson writes the same.

DRF's renderer (the standard library's json) took 0.6 ms of the API photo list's 4.8 ms of Python; orjson writes the
same page in a twentieth of that. The two agree on strings (non-ASCII as UTF-8, control characters escaped alike),
integers, key order and the compact separators, but not on everything: orjson writes NaN and infinities as null
(DRF refuses them: STRICT_JSON), floats of 1e-9 <= |x| < 1e-4 in other notations (0.00005 and 5e-6 for Python's
5e-05 and 5e-06), datetimes, dataclasses and enums its own way, and dicts in their storage order (an OrderedDict
reordered, a dict whose items() differs). So orjson writes only plain JSON values and the lists and dicts of DRF's
serializers, the answer is read back and compared with the data, and anything else, or anything that reads back
otherwise, is DRF's to write (or to refuse) as before.
"""

import re

import orjson
from rest_framework import renderers
from rest_framework.utils.serializer_helpers import ReturnDict, ReturnList

_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Where orjson's floats differ from Python's (1e-9 <= |x| < 1e-4): "0.0000..." or a one-digit negative exponent.
# A string holding these text only sends the answer to DRF's renderer.
_SMALL_FLOAT_DECIMALS = b"0.0000"
_ONE_DIGIT_NEGATIVE_EXPONENT = re.compile(rb"e-[1-9](?=[,}\]]|\Z)")
# Escaped after encoding, as DRF does, so that the answer is also JavaScript (UTF-8 of U+2028 and U+2029).
_LINE_SEPARATOR, _PARAGRAPH_SEPARATOR = "\u2028".encode(), "\u2029".encode()


class _NotPlainJson(TypeError):
    pass


def _serializer_data(value: object) -> dict | list:
    """What DRF's serializers return, as the plain dict or list json writes them as (orjson passes every subclass
    of dict, list, str and int here); anything else is not orjson's to write."""
    if type(value) is ReturnDict:
        return dict(value)
    if type(value) is ReturnList:
        return list(value)
    raise _NotPlainJson


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSONRenderer, faster: its compact form (COMPACT_JSON, UNICODE_JSON, no `indent`) by orjson where the
    bytes are the same, DRF's own code otherwise."""

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if (
            data is None
            or self.ensure_ascii
            or not self.compact
            or self.get_indent(accepted_media_type, renderer_context or {}) is not None
        ):
            return super().render(data, accepted_media_type, renderer_context)
        try:
            written = orjson.dumps(data, default=_serializer_data, option=_ORJSON_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError too: a value it does not write, an integer past 64 bits, ...
            return super().render(data, accepted_media_type, renderer_context)
        if (
            _SMALL_FLOAT_DECIMALS in written
            or _ONE_DIGIT_NEGATIVE_EXPONENT.search(written)
            or orjson.loads(written) != data  # NaN and infinities (null), enums, ...
        ):
            return super().render(data, accepted_media_type, renderer_context)
        if _LINE_SEPARATOR in written or _PARAGRAPH_SEPARATOR in written:
            written = written.replace(_LINE_SEPARATOR, b"\\u2028").replace(_PARAGRAPH_SEPARATOR, b"\\u2029")
        return written
