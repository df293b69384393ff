"""The decoding settings a caption may be asked for, and their limits: the one definition the re-caption form,
the API's input and the worker all check against."""

from dataclasses import dataclass

from django.conf import settings

STRATEGIES = {"beam": "Beam search", "greedy": "Greedy", "sample": "Sampling"}


@dataclass(frozen=True)
class NumberLimit:
    kind: type[int] | type[float]
    minimum: int | float
    maximum: int | float

    def check(self, name: str, value: object) -> None:
        """Raises ValueError unless `value` is a number of this kind within the limits."""
        kinds = (int,) if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or not self.minimum <= value <= self.maximum:
            kind = "a whole number" if self.kind is int else "a number"
            raise ValueError(f"{name} must be {kind} from {self.minimum} to {self.maximum}")


NUMBER_LIMITS: dict[str, NumberLimit] = {
    "beam_size": NumberLimit(int, 1, 10),
    "max_length": NumberLimit(int, 5, 80),
    "temperature": NumberLimit(float, 0.1, 2.0),
    "top_p": NumberLimit(float, 0.05, 1.0),
    "top_k": NumberLimit(int, 1, 1000),
    "length_normalization": NumberLimit(float, 0.0, 2.0),
    "seed": NumberLimit(int, 0, 2**31 - 1),
}


def decoding_defaults() -> dict:
    return {"strategy": "beam", "beam_size": settings.CAPTION_BEAM_SIZE, "max_length": settings.CAPTION_MAX_LENGTH}


def decoding_settings(requested: dict | None = None) -> dict:
    """The decoding settings a caption is written with: the defaults, overridden by `requested` (checked:
    ValueError names the first setting that is unknown or out of its limits). None means the default."""
    values = decoding_defaults()
    for name, value in (requested or {}).items():
        if name == "strategy":
            if not isinstance(value, str) or value not in STRATEGIES:
                raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
        elif name not in NUMBER_LIMITS:
            raise ValueError(f"unknown decoding setting {name!r}")
        elif value is not None:
            NUMBER_LIMITS[name].check(name, value)
        values[name] = value
    if values["strategy"] != "beam":
        values.pop("beam_size", None)
    return {name: value for name, value in values.items() if value is not None}
