"""What runs on a machine with an NVIDIA GPU but no TensorRT (TensorRT comes only from NVIDIA's index).

    python bench/gpu_check.py [--runs 50] [--out gpu_check.json]

In one run of well under 5 minutes it reports:
1. the GPU (torch's view: name, compute capability, memory);
2. the torch CUDA reference latency of HeartBEiT ``base`` (and ``tiny``, the demo bundles' size) (random weights; latency does not
   depend on them) in FP16 and FP32, batch 1 and 8, p50/p99 from CUDA events, and the FP16 vs
   FP32 max logit difference;
3. pycuda, if it imports (it needs the CUDA toolkit to build): the exact calls the TensorRT
   runtime makes besides TensorRT itself - page-locked host buffers, device buffers, one stream,
   async copies both ways - checked by a round trip, with the H2D/D2H time of one batch-8 input.
Each step that cannot run says why and the rest still run. Nothing here imports TensorRT.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _pct(ms: list[float]) -> dict:
    import numpy as np

    a = np.array(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def torch_cuda(runs: int, deadline: float, size: str = "base") -> dict:
    try:
        import torch
    except ImportError as exc:
        return {"status": f"torch not importable: {exc}"}
    if not torch.cuda.is_available():
        return {"status": "torch sees no CUDA device", "torch": torch.__version__}
    from export.models.heartbeit import create_model

    dev = torch.device("cuda:0")
    props = torch.cuda.get_device_properties(dev)
    out: dict = {"status": "ok", "torch": torch.__version__, "cuda": torch.version.cuda, "gpu": props.name,
                 "compute_capability": f"{props.major}.{props.minor}", "memory_gib": round(props.total_memory / 2**30, 1)}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    model = create_model(size, num_classes=5).eval().to(dev)
    torch.nn.init.normal_(model.head.weight, std=1.0)
    x8 = torch.randn(8, 3, 224, 224, device=dev)
    with torch.inference_mode():
        ref = model(x8).float()
        for dtype, name in ((torch.float16, "fp16"), (torch.float32, "fp32")):
            m = model.to(dtype)
            for batch in (1, 8):
                if time.monotonic() > deadline:
                    out[f"{name}_b{batch}"] = "skipped: time budget"
                    continue
                xb = x8[:batch].to(dtype)
                for _ in range(10):
                    m(xb)
                torch.cuda.synchronize()
                ms = []
                for _ in range(runs):
                    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    s.record()
                    m(xb)
                    e.record()
                    e.synchronize()
                    ms.append(s.elapsed_time(e))
                out[f"{name}_b{batch}"] = {**_pct(ms), "images_per_s": round(batch * 1e3 / sorted(ms)[len(ms) // 2], 1)}
            if name == "fp16":
                out["fp16_vs_fp32_max_abs_logit_diff"] = float((m(x8.half()).float() - ref).abs().max())
        model.float()
    return out


def pycuda_buffers() -> dict:
    try:
        import numpy as np
        import pycuda.driver as cuda
    except ImportError as exc:
        return {"status": f"pycuda not importable ({exc}); pip install pycuda needs the CUDA toolkit (nvcc, headers)"}
    cuda.init()
    ctx = cuda.Device(0).make_context()
    try:
        host_in = cuda.pagelocked_empty((8, 3, 224, 224), np.float32)
        host_out = cuda.pagelocked_empty((8, 3, 224, 224), np.float32)
        host_in[:] = np.random.default_rng(0).standard_normal(host_in.shape, dtype=np.float32)
        dev = cuda.mem_alloc(host_in.nbytes)
        stream = cuda.Stream()
        ms = []
        for _ in range(20):
            t0 = time.perf_counter()
            cuda.memcpy_htod_async(dev, host_in, stream)
            cuda.memcpy_dtoh_async(host_out, dev, stream)
            stream.synchronize()
            ms.append((time.perf_counter() - t0) * 1e3)
        ok = bool(np.array_equal(host_in, host_out))
        return {"status": "ok" if ok else "round trip mismatch", "pycuda": cuda.get_version(),
                "driver": cuda.get_driver_version(), "roundtrip_batch8": _pct(ms), "stream_handle_int": isinstance(stream.handle, int)}
    finally:
        ctx.pop()
        ctx.detach()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--budget-s", type=float, default=240.0, help="stop timing new configurations after this")
    ap.add_argument("--out", type=Path, default=None, help="also write the report as JSON here")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    report = {"host": platform.node(), "python": platform.python_version()}
    try:
        import tensorrt  # noqa: F401

        report["tensorrt"] = f"importable ({tensorrt.__version__}): use `edge-ecg engine build|verify` instead"
    except ImportError:
        report["tensorrt"] = "not importable (expected on this machine)"
    report["torch_cuda_base"] = torch_cuda(args.runs, t0 + args.budget_s)
    report["torch_cuda_tiny"] = torch_cuda(args.runs, t0 + args.budget_s, "tiny")  # the demo bundles' size
    report["pycuda"] = pycuda_buffers()
    report["wall_s"] = round(time.monotonic() - t0, 1)
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0 if report["torch_cuda_base"].get("status") == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
