"""Numeric precision of search and training steps: ``precision`` auto, bf16, fp16 or fp32.

``auto`` is bf16 autocast on a GPU that supports it (fp16 with loss scaling on one that does
not) and fp32 on the CPU, where lower precision is rarely faster and changes results. bf16
needs no loss scaling, so its steps stay free of host synchronisation; fp16's gradient
scaler reads back whether a step overflowed, once per step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .errors import SettingError
from .options import PRECISIONS

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one device: what autocast to run, whether to scale losses."""

    name: str  # bf16, fp16 or fp32
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return DTYPES[self.name]

    @property
    def scales_loss(self) -> bool:
        return self.name == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """The autocast region of a forward pass and its loss (a no-op at fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only where the precision needs one (fp16)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scales_loss)


def resolve_precision(name: str, device: torch.device) -> Precision:
    """``name`` (one of :data:`PRECISIONS`) made concrete for ``device``."""
    if name not in PRECISIONS:
        raise SettingError("precision", f"must be one of {', '.join(PRECISIONS)}, got {name!r}.")
    if name == "auto":
        if device.type != "cuda":
            name = "fp32"
        else:
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if name == "fp16" and device.type != "cuda":
        raise SettingError("precision", "fp16 needs a CUDA GPU; on the CPU use bf16 or fp32.")
    return Precision(name, device.type)
