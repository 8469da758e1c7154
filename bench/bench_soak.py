"""Soak benchmark: >= 1 h of 12-lead 500 Hz input through the whole daemon pipeline, as fast as possible.

Prints the real-time factor (stream seconds per wall second; target >= 50x on 2 cores with a
``tiny`` INT8 bundle on ONNX Runtime), CPU seconds per real-time second, and peak RSS with the
mean RSS over the first and the last 10 minutes of stream time (target: last within 5% of first).

Input: the LUDB 12-lead records of ``../shared/ecg/ludb`` concatenated (real ECG) and replayed in
a loop until the hour is reached; without it, a synthetic 12-lead signal (said so). Every window
is classified (``lossless``: the pipeline waits for inference instead of coalescing, which a live
cart never does), so the factor measures DSP + render + inference of every hop, not skipping.

Bundle: ``--bundle DIR`` or ``bundles/12lead-screen`` when present; otherwise a ``tiny``
HeartBEiT with random weights is exported and INT8-quantized through the factory (said so:
its findings are meaningless, its cost is the real cost of a tiny model).

    python bench/bench_soak.py [--hours 1] [--threads 2] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("EDGE_ECG_SHARED", REPO.parent / "shared")) / "ecg"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def twelve_lead_input():
    """(Record, description): LUDB concatenated, or synthetic 12-lead when LUDB is absent."""
    from edge_ecg.records import STANDARD_12, Record, read_record

    ludb = SHARED / "ludb"
    if ludb.is_dir():
        parts = []
        for hea in sorted(ludb.rglob("*.hea")):
            r = read_record(hea)
            if r.fs == 500 and set(STANDARD_12) <= set(r.leads):
                parts.append(r.select(STANDARD_12).signals)
        sig = np.concatenate(parts)
        return Record(signals=sig, fs=500.0, leads=STANDARD_12, name="ludb-concat"), f"LUDB, {len(parts)} real 12-lead records concatenated ({sig.shape[0] / 500:.0f} s), looped"
    from edge_ecg.demo import synthetic_ecg

    two, _ = synthetic_ecg(600.0, fs=500.0)
    ii, v1 = two.signals[:, 0], two.signals[:, 1]
    sig = np.stack([ii * k for k in (0.6, 1.0, 0.4, -0.8, 0.1, 0.7)] + [v1 * k for k in (1.0, 1.2, 0.8, -0.5, -0.9, -1.0)], axis=1)
    return Record(signals=sig.astype(np.float32), fs=500.0, leads=STANDARD_12, name="synthetic12"), "synthetic 12-lead ECG (../shared/ecg/ludb absent), looped"


def tiny_int8_bundle(out: Path, record) -> Path:
    """A tiny random-weight HeartBEiT, exported and INT8-quantized on rendered windows of ``record``."""
    import torch

    from edge_ecg.render import RenderSpec, render, to_model_input
    from export.bundle_writer import write_bundle
    from export.models.heartbeit import create_model
    from export.onnx_export import export_onnx
    from export.quantize import quantize_qdq

    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=4).eval()
    spec = RenderSpec(layout="12lead")
    n = int(10 * record.fs)
    images = np.stack([render(record.slice(i * n, (i + 1) * n), spec) for i in range(32)])
    fp32 = export_onnx(model, out / "model.onnx")
    int8 = quantize_qdq(fp32, out / "model.int8.onnx", to_model_input(images))
    labels = [{"name": n, "threshold": 0.99, "priority": "low"} for n in ("afib", "lvh", "stemi", "other")]
    write_bundle(out / "tiny-soak", name="tiny-soak", spec=spec, labels=labels, fp32_onnx=fp32, int8_onnx=int8, window_s=10.0, hop_s=2.0,
                 check_images=images[:4], provenance={"note": "random weights: soak benchmark only"}, overwrite=True)
    return out / "tiny-soak"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (1 leaves the other core to the DSP)")
    ap.add_argument("--bundle", type=Path, default=None)
    ap.add_argument("--hop", type=float, default=2.0, help="hop in seconds (the bedside default, whatever the bundle says)")
    ap.add_argument("--make-bundle", type=Path, default=None, help=argparse.SUPPRESS)  # internal: build in a child process
    args = ap.parse_args()
    if args.make_bundle is not None:
        tiny_int8_bundle(args.make_bundle, twelve_lead_input()[0])
        return 0

    from edge_ecg.service.config import config_from_dict
    from edge_ecg.service.daemon import build_daemon, start_daemon
    from edge_ecg.stream.replay_source import ReplaySource

    record, desc = twelve_lead_input()
    record_mb = record.signals.nbytes / 2**20
    loops = int(np.ceil(args.hours * 3600 / record.duration_s))
    tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-soak-"))
    bundle = args.bundle or (REPO / "bundles" / "12lead-screen")
    if not (bundle / "bundle.toml").is_file():
        print(f"bundle: none given and bundles/12lead-screen absent; building a tiny random-weight INT8 bundle in {tmp}")
        import subprocess

        # in a child process, so torch never enters the measured process (the appliance never imports it)
        subprocess.run([sys.executable, __file__, "--make-bundle", str(tmp)], check=True)
        bundle = tmp / "tiny-soak"
    cfg = config_from_dict(
        {
            "source": "replay:unused",
            "bundle": [{"path": str(bundle), "backend": "onnxruntime", "precision": "int8", "threads": args.threads, "hop_s": args.hop}],
            "sinks": {"state_dir": str(tmp / "state"), "stdout": False, "evidence": False},
            "service": {"stall_s": 600.0},
        },
        base=tmp,
    )
    source = ReplaySource(record, speed=0.0, loop=loops, block_s=0.1)
    print(f"input: {desc}; {source.duration_s / 3600:.2f} h of 12-lead {record.fs:g} Hz")
    d = build_daemon(cfg, source=source, stdout=None, lossless=True)
    slot = d.pipeline.slots[0]
    print(f"bundle: {slot.name} ({slot.bundle.architecture}), ONNX Runtime INT8, {args.threads} threads, window {slot.window_s:g} s, hop {slot.hop_s:g} s")

    samples: list[tuple[float, float]] = []  # (stream s, RSS MB)
    stop = threading.Event()

    def sample_rss() -> None:
        while not stop.wait(0.5):
            samples.append((d.pipeline.stream_t, rss_mb()))

    sampler = threading.Thread(target=sample_rss, daemon=True)
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    sampler.start()
    start_daemon(d)
    last_print = t0
    while not d.pipeline.done.wait(1.0):
        if time.monotonic() - last_print >= 15:
            last_print = time.monotonic()
            print(f"  {d.pipeline.stream_t / 60:5.1f} min of stream, {d.pipeline.stream_t / (last_print - t0):5.1f}x, RSS {rss_mb():.0f} MB", flush=True)
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    stream = d.pipeline.stream_t
    st = d.pipeline.stats.summary(d.pipeline.fs)
    d.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    first = [r for s, r in samples if s <= 600]
    last = [r for s, r in samples if s >= stream - 600]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("result")
    print(f"  stream {stream / 3600:.2f} h in {wall:.0f} s wall: real-time factor {stream / wall:.1f}x (target >= 50x)")
    print(f"  windows classified {st['windows']} ({st['windows'] / wall:.1f}/s), skipped {st['windows_skipped']}, coalesced {st['coalesced']}, inference p50 {st['infer_ms_p50']} ms")
    print(f"  CPU {cpu:.0f} s = {cpu / stream:.4f} CPU-s per real-time second ({cpu / wall:.2f} cores busy)")
    if first and last:
        f, l = float(np.mean(first)), float(np.mean(last))
        print(f"  RSS first 10 min {f:.0f} MB, last 10 min {l:.0f} MB ({100 * (l - f) / f:+.1f}%, target within 5%), peak {peak:.0f} MB (of which the input held in memory for replay: {record_mb:.0f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
