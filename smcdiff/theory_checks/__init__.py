"""Numerical checks of the theory, importable by users for their own components.

* exact enumeration of a proposal's paths on toy models (:func:`enumerate_paths`),
  the exact normaliser (:func:`exact_log_Z`) and target law (:func:`exact_target`);
* :func:`check_proper_weighting` (exact), :func:`check_sampling_law` (the draws
  follow the reported ``log q``) and :func:`check_unbiasedness` (statistical,
  ``E[Z_hat] / Z = 1`` within k standard errors), all three at once with
  :func:`check_components`;
* :mod:`.rank_reversal` and :mod:`.expected_reward`: the RWS theorems
  (arXiv 2509.00707) as computable statements.
"""

from . import expected_reward, rank_reversal
from .checks import (
    ComponentReport,
    ProperWeightingReport,
    SamplingLawReport,
    UnbiasednessReport,
    check_components,
    check_proper_weighting,
    check_sampling_law,
    check_unbiasedness,
)
from .enumerate import PathEnumeration, enumerate_paths, estimate_enumeration, exact_log_Z, exact_target

__all__ = [
    "PathEnumeration",
    "enumerate_paths",
    "exact_log_Z",
    "exact_target",
    "estimate_enumeration",
    "check_proper_weighting",
    "ProperWeightingReport",
    "check_sampling_law",
    "SamplingLawReport",
    "check_unbiasedness",
    "UnbiasednessReport",
    "check_components",
    "ComponentReport",
    "rank_reversal",
    "expected_reward",
]
