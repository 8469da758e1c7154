"""Shared, cached export artifacts for the export/bundle/runtime tests (built once per session).

A ``tiny`` HeartBEiT, random-init but with a unit-scale head so logits differ between windows,
exported to FP32 ONNX, quantized to INT8 QDQ on rendered real MIT-BIH windows, written as a real
bundle. Calibration is 48 windows here (CI speed); factory bundles use >= 500.
``conftest.py`` registers the ``arts`` fixture from here, so every test module can ask for it.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass(frozen=True)
class Artifacts:
    root: Path
    model: object
    bundle_dir: Path
    calib_sha: str
    check_images: np.ndarray


@functools.lru_cache(maxsize=None)
def _build(mitdb: str) -> Artifacts:
    import torch

    from edge_ecg.render import RenderSpec
    from export.bundle_writer import bundle_from_model
    from export.calibration import WindowSet, select_windows
    from export.models.heartbeit import create_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = Path(tempfile.mkdtemp(prefix="edge-ecg-export-tests-"))
    atexit.register(shutil.rmtree, root, True)
    model = create_model("tiny", num_classes=3).eval()
    torch.nn.init.normal_(model.head.weight, std=1.0)
    spec = RenderSpec(layout="strips")
    ws = select_windows([mitdb], spec, 64, seed=0)
    calib = WindowSet(ws.images[:48], ws.ids[:48], 0, ws.sources)
    check = WindowSet(ws.images[48:], ws.ids[48:], 0, ws.sources)
    bundle = bundle_from_model(model, root / "tiny-bundle", name="tiny-test", spec=spec,
                               labels=[{"name": "vt", "threshold": 0.7, "priority": "high"}, "normal", "other"],
                               calibration=calib, check=check, hop_s=2.0)
    return Artifacts(root, model, bundle.root, calib.sha256, check.images)


def artifacts(mitdb_dir: Path) -> Artifacts:
    return _build(str(mitdb_dir))


@pytest.fixture(scope="session")
def arts(mitdb_dir) -> Artifacts:
    return artifacts(mitdb_dir)
