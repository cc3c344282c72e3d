"""Export a trained network to ONNX or TorchScript, checked against PyTorch on export.

The exported model is run on a random batch and its outputs compared with the PyTorch
network's; an export that does not match within the tolerance is not written.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import TfnasError
from .io import atomic_write_bytes
from .options import EXPORT_TOLERANCE, MODEL_FORMATS


@dataclass(frozen=True)
class ExportCheck:
    format: str
    max_abs_diff: float
    tolerance: float
    path: Path


def export_network(
    net: torch.nn.Module,
    input_shape: tuple[int, ...],
    fmt: str,
    out: str | Path,
    tolerance: float = EXPORT_TOLERANCE,
    batch_size: int = 2,
) -> ExportCheck:
    """Write ``net`` as ``fmt`` to ``out`` after checking max |exported - torch| <= tolerance
    (absolute, on logits) on a random batch."""
    if fmt not in MODEL_FORMATS:
        raise TfnasError(f"unknown export format '{fmt}' (choose from {', '.join(MODEL_FORMATS)}).")
    net = net.eval().cpu()
    x = torch.randn(batch_size, *input_shape)
    with torch.no_grad():
        expected = net(x)
    buffer = io.BytesIO()
    if fmt == "onnx":
        import onnxruntime as ort

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                (x,),
                buffer,
                input_names=["images"],
                output_names=["logits"],
                dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                dynamo=False,
            )
        session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(None, {"images": x.numpy()})[0])
    else:
        with warnings.catch_warnings(), torch.no_grad():
            # TorchScript is deprecated in favour of torch.export, but it is what C++ and
            # mobile runtimes still load; the warning says nothing the user can act on here.
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(torch.jit.trace(net, x), buffer)
            buffer.seek(0)
            got = torch.jit.load(buffer)(x)
    diff = float((got - expected).abs().max())
    if not diff <= tolerance:
        raise TfnasError(
            f"the {fmt} export differs from PyTorch by {diff:.2e}, more than the tolerance "
            f"{tolerance:.0e}; nothing was written."
        )
    path = atomic_write_bytes(out, buffer.getvalue())
    return ExportCheck(fmt, diff, tolerance, path)
