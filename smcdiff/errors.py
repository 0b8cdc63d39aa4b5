"""Exceptions raised by smcdiff.

Every error names the offending input and, where it helps, the value that was
expected. They all derive from :class:`SMCDiffError`; the configuration errors
also derive from :class:`ValueError` so that generic handlers keep working.
"""

from __future__ import annotations


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

    def __init__(self, rows: list[int], where: str = "") -> None:
        self.rows = list(rows)
        at = f" {where}" if where else ""
        super().__init__(
            f"all particles of prompt(s) {self.rows} have zero weight (log weight -inf){at}; "
            "the normalised weights are undefined. Check the potentials (a hard constraint that "
            "nothing satisfies?) or run the SMC with on_all_dead='flag' to get log Z = -inf "
            "for those prompts instead of this error."
        )


class UndefinedWeightError(SMCDiffError, ValueError):
    """A proposal/target combination whose importance weight does not exist.

    Raised, for example, when a deterministic selection rule that differs from the
    reference kernel is used inside SMC: the ratio of the two kernels is then not
    a density ratio.
    """
