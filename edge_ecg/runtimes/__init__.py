"""One small runtime interface over a bundle: ``open_runtime(bundle, backend, precision).run(x)``.

Backends: ``onnxruntime`` (CPU, the embedded default everywhere) and ``tensorrt`` (TensorRT 10.x
on a Jetson or other NVIDIA GPU; imported lazily, only when asked for or auto-selected). ``auto``
picks TensorRT when it is importable and a GPU is present, else ONNX Runtime, and logs why.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edge_ecg.errors import BundleError, InputError

if TYPE_CHECKING:
    from edge_ecg.bundle import Bundle

log = logging.getLogger(__name__)

BACKENDS = ("auto", "onnxruntime", "tensorrt")

__all__ = ["BACKENDS", "Runtime", "InferenceBackendError", "open_runtime", "tensorrt_available", "select_backend"]


class InferenceBackendError(InputError):
    """A runtime that cannot run this bundle (backend missing, bad input batch)."""


@dataclass
class Runtime:
    """Base of every backend: runs a float32 (N,3,H,W) batch and returns float32 logits (N, labels)."""

    bundle: "Bundle"
    precision: str
    backend: str = ""
    last_latency_s: float = field(default=0.0, init=False)

    def check_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        c, h, w = self.bundle.input_shape
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, h, w):
            raise InferenceBackendError(self.bundle.root, f"input batch must be (N,{c},{h},{w}) float32, got shape {x.shape}")
        if x.shape[0] == 0:
            raise InferenceBackendError(self.bundle.root, "empty input batch")
        return np.ascontiguousarray(x, dtype=np.float32)

    def run(self, x: np.ndarray) -> np.ndarray:
        x = self.check_input(x)
        t0 = time.perf_counter()
        out = self._run(x)
        self.last_latency_s = time.perf_counter() - t0
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the backend's resources (sessions, engines, device buffers)."""

    def describe(self) -> str:
        return f"{self.backend} {self.precision}"

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tensorrt_available() -> tuple[bool, str]:
    """Whether TensorRT can run here, and why not (for the log)."""
    for mod in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(mod) is None:
            return False, f"python module {mod!r} not installed"
    try:
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return False, "no CUDA device"
        import tensorrt  # noqa: F401
    except Exception as exc:  # library present but broken / no driver
        return False, f"{exc.__class__.__name__}: {exc}"
    return True, "tensorrt and a CUDA device present"


def select_backend(backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend != "auto":
        return backend
    ok, why = tensorrt_available()
    chosen = "tensorrt" if ok else "onnxruntime"
    log.info("runtime auto-selection: %s (%s)", chosen, why)
    return chosen


def open_runtime(bundle: "Bundle", backend: str = "auto", precision: str = "int8",
                 threads: int | None = None, max_batch: int = 8) -> Runtime:
    """A runtime for ``bundle``: ONNX Runtime (``threads`` intra-op threads) or TensorRT (batch 1..max_batch)."""
    from edge_ecg.bundle import PRECISIONS

    if precision not in PRECISIONS:
        raise BundleError(bundle.root, f"no precision {precision!r} (bundles hold {', '.join(PRECISIONS)})")
    chosen = select_backend(backend)
    if chosen == "tensorrt":
        from edge_ecg.runtimes.tensorrt_runtime import TensorRTRuntime

        try:
            return TensorRTRuntime.open(bundle, precision=precision, max_batch=max_batch)
        except Exception as exc:
            if backend != "auto":
                raise
            # Degrade, don't die: a unit whose engine cannot be built still classifies on the CPU.
            log.warning("TensorRT failed for %s (%s); falling back to onnxruntime", bundle.name, exc)
    from edge_ecg.runtimes.onnxruntime_runtime import OnnxRuntimeRuntime

    return OnnxRuntimeRuntime.open(bundle, precision=precision, threads=threads)
