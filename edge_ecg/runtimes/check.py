"""Check a runtime against ONNX Runtime on a bundle's check windows, and time runtimes side by side.

``verify`` is what ``edge-ecg engine verify`` runs on a device before an engine is trusted;
``benchmark`` is what ``edge-ecg bench infer`` prints (medians and ratios from one run).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge_ecg.bundle import Bundle
from edge_ecg.errors import BundleError
from edge_ecg.runtimes import Runtime, open_runtime


@dataclass(frozen=True)
class VerifyReport:
    backend: str
    precision: str
    against: str  # the reference: ONNX Runtime at this precision
    windows: int
    top_label_agreement: float
    decision_agreement: float  # per-label decisions at the bundle's default thresholds
    max_abs_logit_diff: float
    factory_max_abs_logit_diff: float  # the reference here vs its logits stored at export
    latency_ms_p50: float
    latency_ms_p90: float
    latency_ms_p99: float

    def ok(self, min_agreement: float = 0.99) -> bool:
        return self.top_label_agreement >= min_agreement

    def lines(self) -> list[str]:
        return [
            f"verify {self.backend} {self.precision} vs onnxruntime {self.against} on {self.windows} check windows",
            f"  top-label agreement   {self.top_label_agreement:.4f}",
            f"  decision agreement    {self.decision_agreement:.4f}",
            f"  max |logit diff|      {self.max_abs_logit_diff:.3g}",
            f"  ORT vs factory logits {self.factory_max_abs_logit_diff:.3g}",
            f"  latency batch 1 (ms)  p50 {self.latency_ms_p50:.2f}  p90 {self.latency_ms_p90:.2f}  p99 {self.latency_ms_p99:.2f}",
            f"  result                {'PASS' if self.ok() else 'FAIL'}",
        ]


def _latencies(rt: Runtime, x: np.ndarray, n: int, warmup: int = 3) -> np.ndarray:
    for i in range(warmup):
        rt.run(x[i % len(x)][None])
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        rt.run(x[i % len(x)][None])
        out.append(time.perf_counter() - t0)
    return np.array(out) * 1e3


def verify(bundle: Bundle, backend: str = "tensorrt", precision: str = "int8", runs: int = 50,
           threads: int | None = None, against: str | None = None) -> VerifyReport:
    """``backend`` at ``precision`` against ONNX Runtime at ``against`` (default: the same precision,
    which checks an engine build; ``"fp32"`` measures what INT8 quantization changed in the decisions)."""
    from edge_ecg.inference import sigmoid
    from edge_ecg.render import to_model_input

    if "check.npz" not in bundle.files:
        raise BundleError(bundle.root, "bundle has no check windows (check.npz)")
    check = bundle.check_windows()
    x = to_model_input(check["images"])
    against = against or precision
    with open_runtime(bundle, "onnxruntime", against, threads=threads) as ref_rt:
        ref = ref_rt.run(x)
    with open_runtime(bundle, backend, precision, threads=threads) as rt:
        got = rt.run(x)
        lat = _latencies(rt, x, runs)
        name = rt.backend
    thr = bundle.thresholds[None, :]
    stored = check.get(f"logits_{against}")
    return VerifyReport(
        backend=name, precision=precision, against=against, windows=len(x),
        top_label_agreement=float(np.mean(ref.argmax(1) == got.argmax(1))),
        decision_agreement=float(np.mean((sigmoid(ref) >= thr) == (sigmoid(got) >= thr))),
        max_abs_logit_diff=float(np.abs(ref - got).max()),
        factory_max_abs_logit_diff=float(np.abs(ref - stored).max()) if stored is not None else float("nan"),
        latency_ms_p50=float(np.percentile(lat, 50)), latency_ms_p90=float(np.percentile(lat, 90)),
        latency_ms_p99=float(np.percentile(lat, 99)),
    )


@dataclass(frozen=True)
class BenchRow:
    backend: str
    precision: str
    batch: int
    p50_ms: float
    p99_ms: float
    images_per_s: float


def benchmark(bundle: Bundle, backends: Sequence[str] = ("onnxruntime",), precisions: Sequence[str] = ("fp32", "int8"),
              batch: int = 1, runs: int = 30, threads: int | None = None, rounds: int = 3) -> list[BenchRow]:
    """Latency per batch for every (backend, precision), interleaved in ``rounds`` so drift hits all alike."""
    from edge_ecg.render import to_model_input

    if "check.npz" in bundle.files:
        x = to_model_input(bundle.check_windows()["images"])
    else:
        x = np.zeros((batch,) + bundle.input_shape, np.float32)
    xb = np.ascontiguousarray(np.resize(x, (batch,) + x.shape[1:]))
    runtimes = {(b, p): open_runtime(bundle, b, p, threads=threads) for b in backends for p in precisions}
    times: dict[tuple[str, str], list[float]] = {k: [] for k in runtimes}
    try:
        for rt in runtimes.values():
            for _ in range(3):
                rt.run(xb)
        per_round = max(1, runs // rounds)
        for _ in range(rounds):
            for k, rt in runtimes.items():
                for _ in range(per_round):
                    t0 = time.perf_counter()
                    rt.run(xb)
                    times[k].append(time.perf_counter() - t0)
    finally:
        for rt in runtimes.values():
            rt.close()
    rows = []
    for (b, p), t in times.items():
        t = np.array(t) * 1e3
        rows.append(BenchRow(b, p, batch, float(np.percentile(t, 50)), float(np.percentile(t, 99)),
                             float(batch * 1e3 / np.median(t))))
    return rows


def format_bench(rows: Sequence[BenchRow]) -> str:
    lines = [f"{'backend':<12} {'precision':<9} {'batch':>5} {'p50 ms':>9} {'p99 ms':>9} {'img/s':>8} {'vs fp32':>8}"]
    base = {r.backend: r.p50_ms for r in rows if r.precision == "fp32"}
    for r in rows:
        ratio = f"{base[r.backend] / r.p50_ms:.2f}x" if r.backend in base else "-"
        lines.append(f"{r.backend:<12} {r.precision:<9} {r.batch:>5} {r.p50_ms:>9.2f} {r.p99_ms:>9.2f} "
                     f"{r.images_per_s:>8.1f} {ratio:>8}")
    return "\n".join(lines)
