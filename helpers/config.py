"""Typed configs: frozen, keyword-only dataclasses that reject a field they do not have.

    class RunConfig(Config):
        lr: float = 1e-3
        epochs: int = 3

    RunConfig(lrr=0.1)   # ConfigError: RunConfig has no field 'lrr' (did you mean 'lr'?); its fields: lr, epochs

A typo fails where it is made, not as a KeyError three calls later. ``cfg.replace(epochs=5)`` returns a
changed copy, checked the same way; ``cfg.to_dict()`` is what checkpoints and JSON reports store.
"""

import dataclasses
import difflib
import functools
import math
import numbers
import typing
from typing import Any, Self


class ConfigError(ValueError):
    """A config field that does not exist, or a value it cannot take."""


def _unknown(cls: type, names: list[str]) -> ConfigError:
    valid = [f.name for f in dataclasses.fields(cls)]
    name = names[0]
    close = difflib.get_close_matches(name, valid, n=1)
    maybe = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"{cls.__name__} has no field {name!r}{maybe}; its fields: {', '.join(valid)}"
    )


@typing.dataclass_transform(kw_only_default=True, frozen_default=True)
class Config:
    """Base of every config: a subclass is a frozen keyword-only dataclass whose constructor names the
    valid fields on a typo and checks that numeric fields hold numbers."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        init = cls.__init__
        valid = {f.name for f in dataclasses.fields(cls)}

        @functools.wraps(init)
        def __init__(self: Config, *args: Any, **kwargs: Any) -> None:
            unknown = [k for k in kwargs if k not in valid]
            if unknown:
                raise _unknown(type(self), unknown)
            _check_numbers(type(self), kwargs)  # before __post_init__ compares them
            init(self, *args, **kwargs)

        cls.__init__ = __init__

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (unknown names fail the same way)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (for JSON and checkpoints)."""
        return dataclasses.asdict(self)


def _check_numbers(cls: type, values: dict[str, Any]) -> None:
    """A ConfigError for a field typed int given a fraction, text or a bool (``epochs=1.5``), or one
    typed float given text or a bool: before any code uses it as a count or compares it."""
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        kind = hints.get(name)
        if value is None:
            continue
        if isinstance(value, bool) and kind in (int, int | None, float, float | None):
            raise ConfigError(f"{cls.__name__}.{name} must be a number, got {value!r}")  # True == 1
        if kind in (int, int | None) and not isinstance(value, numbers.Integral):
            raise ConfigError(f"{cls.__name__}.{name} must be a whole number, got {value!r}")
        if kind in (float, float | None) and not isinstance(value, numbers.Real):
            raise ConfigError(f"{cls.__name__}.{name} must be a number, got {value!r}")


def positive(owner: object, **values: float | int | None) -> None:
    """Raise ConfigError naming the first of ``values`` that is not > 0 (None is allowed: "not set")."""
    for name, value in values.items():
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise ConfigError(
                f"{type(owner).__name__}.{name} must be > 0 and finite, got {value!r}"
            )
