"""A tiny screening bundle (two LUDB labels) built once per session for the screening tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


LABELS = ("LVH", "ischemia")


def build_tiny_bundle(out_dir: Path, ludb_dir: Path, n_calib: int = 8):
    """A tiny untrained HeartBEiT bundle (standard 224 px 12-lead spec) calibrated on LUDB windows."""
    import torch

    from edge_ecg.bundle import Label
    from edge_ecg.render import RenderSpec, to_model_input
    from export.bundle_writer import bundle_from_model
    from export.calibration import select_windows
    from export.models.heartbeit import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=len(LABELS)).eval()
    with torch.no_grad():  # an untrained head (init scale 1e-3) gives 0.5 everywhere
        torch.nn.init.normal_(model.head.weight, std=0.1)
    spec = RenderSpec()
    records = sorted((ludb_dir / "data").glob("*.hea"))[:n_calib]
    calib = select_windows(records, spec, n=n_calib, window_s=10.0, seed=0)
    with torch.no_grad():
        probs = torch.sigmoid(model(torch.from_numpy(to_model_input(calib.images)))).numpy()
    labels = [Label(n, float(np.round(np.quantile(probs[:, i], 0.9), 4)), "medium") for i, n in enumerate(LABELS)]
    return bundle_from_model(model, out_dir, name="tiny-screen-test", spec=spec, labels=labels, calibration=calib,
                             version="0.0.1", window_s=10.0, hop_s=5.0,
                             provenance={"notice": "untrained test bundle: not for diagnosis"})
