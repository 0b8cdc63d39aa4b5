"""Potentials and their algebra (product, power, timing)."""

from .base import Potential, PowerPotential, ProductPotential, total_log_potential
from .confidence import TrajectoryConfidence

__all__ = ["Potential", "ProductPotential", "PowerPotential", "total_log_potential", "TrajectoryConfidence"]
