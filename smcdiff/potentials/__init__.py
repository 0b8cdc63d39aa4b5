"""Potentials and their algebra (product, power, timing, twists); reward, verifier and FK-steering potentials."""

from .base import Potential, PowerPotential, ProductPotential, TwistPotential, apply_potentials, total_log_potential
from .confidence import TrajectoryConfidence
from .fk import FKSteering
from .reward import RewardPotential
from .verifier import ViolationPotential

__all__ = [
    "Potential",
    "ProductPotential",
    "PowerPotential",
    "TwistPotential",
    "apply_potentials",
    "total_log_potential",
    "TrajectoryConfidence",
    "RewardPotential",
    "ViolationPotential",
    "FKSteering",
]
