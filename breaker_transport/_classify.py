"""Classification: what a call counts as, and the ``Retry-After`` a failing response asks for.

Library-independent: a transport flavour hands over its own map from ``FailureKind`` to exception
classes, and everything here works on that map, status codes and header strings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ._policy import BreakerPolicy, FailureKind
from ._types import Outcome

logger = logging.getLogger("breaker_transport")

KindMap = Mapping[FailureKind, tuple[type[BaseException], ...]]

#: Statuses whose Retry-After a failing response may carry for us to honour.
RETRY_AFTER_STATUSES = frozenset({429, 503})


class ExceptionClassifier:
    """The default verdict on exceptions for one policy and one HTTP library."""

    __slots__ = ("failure_types",)

    def __init__(self, policy: BreakerPolicy, kinds: KindMap) -> None:
        types: list[type[BaseException]] = []
        for matcher in policy.failure_exceptions:
            if isinstance(matcher, FailureKind):
                types.extend(kinds.get(matcher, ()))
            else:
                types.append(matcher)
        self.failure_types = tuple(types)

    def outcome(self, exc: BaseException) -> Outcome:
        if not isinstance(exc, Exception):
            return (
                Outcome.IGNORED
            )  # cancellation, KeyboardInterrupt, GeneratorExit: not the host's fault
        if isinstance(exc, self.failure_types):
            return Outcome.FAILURE
        return Outcome.IGNORED


def call_classifier(
    policy: BreakerPolicy, request: Any, response: Any, exc: BaseException | None
) -> Outcome | None:
    """Ask the policy's ``classify``; a broken classifier is logged and the defaults apply."""
    classify = policy.classify
    assert classify is not None
    try:
        verdict = classify(request, response, exc)
    except Exception:
        logger.exception("BreakerPolicy.classify raised; using the default classification")
        return None
    if verdict is None or isinstance(verdict, Outcome):
        return verdict
    logger.error(
        "BreakerPolicy.classify returned %r, not an Outcome or None; using the defaults",
        verdict,
    )
    return None


def _http_date(text: str) -> float:
    """Unix time of an HTTP-date in any of RFC 9110's three forms (IMF-fixdate, RFC 850, asctime).

    An HTTP-date is always GMT; the asctime form carries no zone, so a naive result is UTC, never
    the machine's local time."""
    parsed = parsedate_to_datetime(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()


def parse_retry_after(value: str, date: str | None, wall_now: float) -> float | None:
    """Seconds a ``Retry-After`` header asks for, or None when it is unusable.

    Accepts delta-seconds and an HTTP-date; an HTTP-date is measured against the response's own
    ``Date`` header when it has a usable one, else against ``wall_now`` (Unix time). A past date,
    a negative number or garbage gives None (logged at DEBUG). Huge values come back as they are:
    the caller caps them at ``max_recovery_timeout``.
    """
    text = value.strip()
    if text.isascii() and text.isdigit():
        # More than 12 digits is more than 30,000 years: cap it here (int() of a string of
        # thousands of digits raises) and let the caller cap it again at max_recovery_timeout.
        return float(int(text)) if len(text) <= 12 else 1e12
    try:
        when = _http_date(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        logger.debug("ignoring unparseable Retry-After %r", value)
        return None
    base = wall_now
    if date:
        try:
            base = _http_date(date.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            logger.debug("ignoring unparseable Date %r; measuring Retry-After on our clock", date)
    delta = when - base
    if not math.isfinite(delta) or delta <= 0:
        logger.debug("ignoring Retry-After %r: it is not in the future", value)
        return None
    return delta
