"""Exceptions raised by smcdiff.

Every error names the offending input, the value given and what is accepted.
They all derive from :class:`SMCDiffError`; the configuration errors also derive
from :class:`ValueError` so that generic handlers keep working. The small
validators at the end (``check_int``, ``check_number``) are what the components
use to refuse a bad setting with such a message.
"""

from __future__ import annotations

import math
import numbers


class SMCDiffError(Exception):
    """Base class of every error raised by smcdiff."""


class ConfigError(SMCDiffError, ValueError):
    """A component or a call was given an invalid setting (wrong shape, range, key...)."""


class ModelOutputError(SMCDiffError, RuntimeError):
    """The denoiser returned something unusable, e.g. NaN logits or the wrong shape."""


class AllParticlesDeadError(SMCDiffError, RuntimeError):
    """Every particle of at least one prompt has weight zero (log weight -inf).

    Attributes:
        rows: indices of the prompts whose particles are all dead.
    """

    #: the advice given when no other is passed (it applies to a run with ``on_all_dead="raise"``)
    DEFAULT_HINT = (
        "Check the potentials (a hard constraint that nothing satisfies?) or run the SMC with "
        "on_all_dead='flag' to get log Z = -inf for those prompts instead of this error."
    )

    def __init__(self, rows: list[int], where: str = "", hint: str | None = None) -> None:
        self.rows = list(rows)
        at = f" {where}" if where else ""
        super().__init__(
            f"all particles of prompt(s) {self.rows} have zero weight (log weight -inf){at}; "
            f"the normalised weights are undefined. {self.DEFAULT_HINT if hint is None else hint}"
        )


class UndefinedWeightError(SMCDiffError, ValueError):
    """A proposal/target combination whose importance weight does not exist.

    Raised, for example, when a deterministic selection rule that differs from the
    reference kernel is used inside SMC: the ratio of the two kernels is then not
    a density ratio.
    """


# ---------------------------------------------------------------------- validators
def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``, or :class:`ConfigError` naming ``name``, the value and the accepted range.

    Only integers are accepted (Python or NumPy integers; not ``bool``, not floats such
    as ``2.0`` or ``2.5``, which would otherwise be truncated silently).
    """
    rng = _range_text(minimum, maximum)
    if not _is_int(value):
        raise ConfigError(f"{name} must be an integer{rng}; got {value!r} ({type(value).__name__})")
    v = int(value)  # type: ignore[arg-type]
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ConfigError(f"{name} must be{rng} (an integer); got {v}")
    return v


def check_number(
    name: str,
    value: object,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a ``float`` in the given interval, or :class:`ConfigError` naming it.

    NaN is always refused, infinities unless ``finite=False``; ``bool`` and strings are
    refused (they are not numbers here).
    """
    if low is not None and high is not None:
        what = f"lie in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        what = f"be {'>' if low_open else '>='} {low:g}"
    elif high is not None:
        what = f"be {'<' if high_open else '<='} {high:g}"
    else:
        what = "be a finite number" if finite else "be a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must {what} (a real number); got {value!r} ({type(value).__name__})")
    v = float(value)
    bad = math.isnan(v) or (finite and math.isinf(v))
    if low is not None and not bad:
        bad = v <= low if low_open else v < low
    if high is not None and not bad:
        bad = v >= high if high_open else v > high
    if bad:
        fin = " and finite" if finite and (low is not None or high is not None) and math.isinf(v) else ""
        raise ConfigError(f"{name} must {what}{fin}; got {value!r}")
    return v


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
