"""smcdiff: sequential Monte Carlo for masked diffusion language models.

The public API is re-exported here; see the package documentation in ``docs/``.
"""

from . import metrics, recipes, rewards, theory_checks
from .engine import SMC, SMCState, make_generators, row_seeds
from .errors import AllParticlesDeadError, ConfigError, ModelOutputError, SMCDiffError, UndefinedWeightError
from .models import Denoiser, ToyDenoiser, random_joint
from .policies import AdaptiveResampling, AlwaysResample, AtBlockEnd, EveryKSteps, EveryStep, NeverResample
from .potentials import Potential, RewardPotential, TrajectoryConfidence, TwistPotential
from .proposals import (
    Ancestral,
    Categorical,
    Confidence,
    EvenSplit,
    FixedCounts,
    Greedy,
    GumbelMax,
    PlackettLuce,
    RandomK,
    RewardTilt,
    Threshold,
    TopK,
    CanvasTopK,
    UnmaskingKernel,
)
from .resampling import available_schemes, register_scheme, resample
from .results import Genealogy, SMCResult, StepRecord
from .state import Canvas, ParticleState
from .weights import Weights

__version__ = "0.2.0.dev0"

__all__ = [
    "recipes",
    "metrics",
    "rewards",
    "theory_checks",
    "SMC",
    "SMCState",
    "SMCResult",
    "StepRecord",
    "Genealogy",
    "make_generators",
    "row_seeds",
    "Weights",
    "resample",
    "available_schemes",
    "register_scheme",
    "AdaptiveResampling",
    "AlwaysResample",
    "NeverResample",
    "EveryStep",
    "AtBlockEnd",
    "EveryKSteps",
    "Canvas",
    "ParticleState",
    "Denoiser",
    "ToyDenoiser",
    "random_joint",
    "Potential",
    "TrajectoryConfidence",
    "RewardPotential",
    "TwistPotential",
    "UnmaskingKernel",
    "RewardTilt",
    "PlackettLuce",
    "Threshold",
    "Ancestral",
    "Categorical",
    "Greedy",
    "GumbelMax",
    "Confidence",
    "TopK",
    "CanvasTopK",
    "RandomK",
    "EvenSplit",
    "FixedCounts",
    "SMCDiffError",
    "ConfigError",
    "ModelOutputError",
    "AllParticlesDeadError",
    "UndefinedWeightError",
]
