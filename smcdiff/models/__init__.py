"""Denoisers: the protocol, exact toy models and adapters for real models."""

from .base import Denoiser, call_denoiser, validate_denoiser
from .toy import ToyDenoiser, random_joint

__all__ = ["Denoiser", "call_denoiser", "validate_denoiser", "ToyDenoiser", "random_joint"]
