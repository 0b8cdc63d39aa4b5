"""Potentials and their algebra (product, power, timing, twists)."""

from .base import Potential, PowerPotential, ProductPotential, TwistPotential, apply_potentials, total_log_potential
from .confidence import TrajectoryConfidence
from .reward import RewardPotential

__all__ = [
    "Potential",
    "ProductPotential",
    "PowerPotential",
    "TwistPotential",
    "apply_potentials",
    "total_log_potential",
    "TrajectoryConfidence",
    "RewardPotential",
]
