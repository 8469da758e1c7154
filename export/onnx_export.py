"""HeartBEiT -> ONNX (opset 17, dynamic batch, named input/output), checked and compared with PyTorch.

Opset 17 is the first with ``LayerNormalization`` as one node (TensorRT runs it as one fused layer
and ORT's quantizer leaves it in float); TensorRT 10.x parses opsets 9-20. The TorchScript exporter
(``dynamo=False``) is used because the dynamo exporter needs ``onnxscript`` and emits opset >= 18.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class ParityReport:
    """PyTorch vs ONNX Runtime FP32 on the same batch."""

    n: int
    max_abs_diff: float
    top_label_agreement: float

    def ok(self, tol: float = 1e-4) -> bool:
        return self.max_abs_diff <= tol


def export_onnx(model, path: str | Path, opset: int = OPSET, check: bool = True) -> Path:
    """Write ``model`` (eval mode, CPU, FP32) as ONNX with a dynamic batch axis; run onnx.checker."""
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().float().cpu()
    cfg = model.cfg
    dummy = torch.zeros(1, cfg.in_chans, cfg.img_size, cfg.img_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    if check:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto, full_check=True)
    log.info("exported %s (opset %d, %.1f MB)", path, opset, path.stat().st_size / 1e6)
    return path


def onnx_logits(path: str | Path, x: np.ndarray, threads: int | None = None) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]


def check_parity(model, path: str | Path, x: np.ndarray, batch: int = 16) -> ParityReport:
    """Max abs logit difference and top-label agreement, PyTorch vs ONNX Runtime, on ``x`` (N,3,H,W)."""
    import torch

    model = model.eval()
    ref, got = [], []
    for i in range(0, len(x), batch):
        xb = np.ascontiguousarray(x[i:i + batch], dtype=np.float32)
        with torch.no_grad():
            ref.append(model(torch.from_numpy(xb)).numpy())
        got.append(onnx_logits(path, xb))
    r, g = np.concatenate(ref), np.concatenate(got)
    return ParityReport(
        n=len(r),
        max_abs_diff=float(np.abs(r - g).max()),
        top_label_agreement=float(np.mean(r.argmax(1) == g.argmax(1))),
    )
