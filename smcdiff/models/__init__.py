"""Denoisers: the protocol, exact toy models and adapters for real models."""

from .base import Denoiser, call_denoiser, output_device, validate_denoiser
from .cache import KVCache
from .callable import CallableDenoiser
from .registry import available, load
from .hf import DreamDenoiser, HFDenoiser, LLaDADenoiser, MaskedLMDenoiser, positions_from_mask
from .toy import ToyDenoiser, random_joint

__all__ = [
    "Denoiser",
    "call_denoiser",
    "output_device",
    "validate_denoiser",
    "KVCache",
    "CallableDenoiser",
    "HFDenoiser",
    "MaskedLMDenoiser",
    "LLaDADenoiser",
    "DreamDenoiser",
    "positions_from_mask",
    "ToyDenoiser",
    "random_joint",
    "load",
    "available",
]
