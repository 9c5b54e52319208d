"""The demo's policies: named presets scaled to the run's length, plus ``field=value`` overrides.

``--policy consecutive`` (the default), ``--policy rate``, or either followed by overrides:
``--policy rate,failure_rate_threshold=0.3,recovery_timeout=2``. Values are Python literals
(``None``, numbers, ``True``); ``BreakerPolicy`` validates the result and names a bad field.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable

from .._policy import BreakerPolicy


def recovery_timeout_for(duration: float) -> float:
    """Open periods scale with the run (8% of it), so a short run still shows a full recovery."""
    return round(max(0.2, 0.08 * duration), 3)


def _consecutive(duration: float) -> BreakerPolicy:
    recovery = recovery_timeout_for(duration)
    return BreakerPolicy(
        failure_threshold=3,
        recovery_timeout=recovery,
        recovery_backoff=1.5,
        max_recovery_timeout=round(3 * recovery, 3),
        # A window, for the slow-call rule (and so the live table can show a failure rate).
        slow_call_duration=0.25,
        slow_call_rate_threshold=0.5,
        minimum_calls=4,
        window_size=10,
    )


def _rate(duration: float) -> BreakerPolicy:
    recovery = recovery_timeout_for(duration)
    return BreakerPolicy(
        failure_threshold=None,
        failure_rate_threshold=0.5,
        minimum_calls=6,
        window_duration=max(1.0, 0.1 * duration),
        slow_call_duration=0.25,
        slow_call_rate_threshold=0.5,
        recovery_timeout=recovery,
        recovery_backoff=1.5,
        max_recovery_timeout=round(3 * recovery, 3),
    )


PRESETS: dict[str, tuple[Callable[[float], BreakerPolicy], str]] = {
    "consecutive": (_consecutive, "3 consecutive failures, or half the last 10 calls slow"),
    "rate": (_rate, "half the calls of the last 10% of the run failed, or were slow"),
}


def _field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(BreakerPolicy) if f.name != "classify"]


def parse_policy(spec: str, duration: float) -> BreakerPolicy:
    """``"preset[,field=value...]"`` -> a validated ``BreakerPolicy``. Raises ``ValueError``."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    name = "consecutive"
    if parts and "=" not in parts[0]:
        name = parts.pop(0)
    if name not in PRESETS:
        raise ValueError(f"unknown policy preset {name!r}; choose one of: {', '.join(PRESETS)}")
    overrides: dict[str, object] = {}
    fields = _field_names()
    for part in parts:
        field, sep, text = part.partition("=")
        field = field.strip()
        if not sep or field not in fields:
            raise ValueError(
                f"--policy: {part!r} is not field=value with a BreakerPolicy field "
                f"({', '.join(fields)})"
            )
        try:
            overrides[field] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise ValueError(
                f"--policy: the value of {field} must be a Python literal, got {text!r}"
            ) from None
    try:
        return dataclasses.replace(PRESETS[name][0](duration), **overrides)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:  # BreakerPolicy's messages name the field and value
        raise ValueError(f"--policy: {exc}") from None


def describe(policy: BreakerPolicy) -> str:
    """The fields that differ from ``BreakerPolicy()``'s defaults, as ``field=value`` text."""
    default = BreakerPolicy()
    changed = [
        f"{name}={getattr(policy, name)!r}"
        for name in _field_names()
        if getattr(policy, name) != getattr(default, name)
    ]
    return ", ".join(changed) or "the defaults"
