"""The three demo tasks and the pretraining corpus: which windows, which leads, which spec.

A task turns the shared folder (``../shared/ecg`` or ``EDGE_ECG_SHARED``) into a ``WindowSet``
plus the leads its windows are rendered with; the ``RenderSpec`` comes from the bundle config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_ecg.errors import ConfigError
from export.datasets.windows import WindowSet
from edge_ecg.records.leads import STANDARD_12
from export.datasets.sources import (
    cinc2017_windows, cinc_vt_windows, ludb_screen_windows, ludb_windows, mitdb_af_windows, mitdb_rhythm_windows,
    mitdb_vt_windows, ptbxl_windows, unlabeled_windows,
)

STRIP_LEADS = ("II", "V")  # lead II + the monitor's other lead (see export.datasets.windows.select_leads)
AF_LEADS = ("II",)  # one lead: lead II of a monitor, the only lead of a handheld (CinC 2017: roughly lead I)
RHYTHM_LABELS = ("ventricular_ectopy", "ventricular_run", "artifact")  # AF moved to the ``af`` task


def shared_root(configured: str | None = None) -> Path:
    """``../shared/ecg`` beside the checkout unless ``EDGE_ECG_SHARED`` or the config says otherwise."""
    if configured:
        return Path(configured)
    env = os.environ.get("EDGE_ECG_SHARED")
    if env:
        return Path(env) / "ecg"
    return Path(__file__).resolve().parents[2].parent / "shared" / "ecg"


@dataclass
class TaskData:
    """Windows of a task, the leads they are rendered with, and which windows count in evaluation."""

    windows: WindowSet
    leads: tuple[str, ...]
    eval_mask: np.ndarray       # bool: windows that may be validated/tested on
    always_train: np.ndarray    # bool: extra windows only ever used for training
    holdout: np.ndarray | None = None  # bool: a fixed external test set (PTB-XL fold 9), besides the CV

    @property
    def input_leads(self) -> tuple[str, ...]:
        """The bundle's ``[input] leads``: what ``Classifier`` selects before rendering. Strip tasks
        need it (monitors differ in their second lead and its position); the 12-lead layout names
        its leads itself and derives limb leads, so it needs none."""
        return self.leads if self.leads in (STRIP_LEADS, AF_LEADS) else ()


def build_task(task: str, root: Path, window_s: float = 10.0, per_record: int = 2) -> TaskData:
    """Windows of ``task`` (``af``, ``12lead-screen``, ``rhythm``, ``vt-triage``) from the shared
    folders; ``per_record``: windows per CinC 2017 recording (``af``)."""
    if task == "vt-triage":
        cinc = cinc_vt_windows(root / "cinc2015-vt", window_s, end_offsets_s=(0.0, 1.5, 3.0))
        mit = mitdb_vt_windows(root / "mitdb-ds1", window_s, per_kind=10)
        ws = WindowSet.concat([cinc, mit])
        src = ws.sources
        return TaskData(ws, STRIP_LEADS, src == "cinc2015-vt", src == "mitdb-ds1")
    if task == "rhythm":
        ws = mitdb_rhythm_windows(root / "mitdb-ds1", window_s, hop_s=window_s)
        keep = [ws.label_names.index(n) for n in RHYTHM_LABELS]
        ws = WindowSet(ws.refs, ws.labels[:, keep], RHYTHM_LABELS)
        return TaskData(ws, STRIP_LEADS, np.ones(len(ws), bool), np.zeros(len(ws), bool))
    if task == "rhythm-0.2":  # the 0.2 bundles' four labels (AF included), for their evaluation
        ws = mitdb_rhythm_windows(root / "mitdb-ds1", window_s, hop_s=window_s)
        return TaskData(ws, STRIP_LEADS, np.ones(len(ws), bool), np.zeros(len(ws), bool))
    if task == "af":
        parts = [cinc2017_windows(root / "cinc2017", window_s, per_record=per_record)]
        if (root / "mitdb-ds1").is_dir():
            parts.append(mitdb_af_windows(root / "mitdb-ds1", window_s))
        ws = WindowSet.concat(parts)
        return TaskData(ws, AF_LEADS, np.ones(len(ws), bool), np.zeros(len(ws), bool))
    if task == "12lead-screen":
        ptb, ptb_fold = ptbxl_windows(root / "ptbxl", window_s)
        ludb = ludb_screen_windows(root / "ludb", window_s)
        ws = WindowSet.concat([ptb, ludb])
        holdout = np.concatenate([ptb_fold == 9, np.zeros(len(ludb), bool)])
        return TaskData(ws, STANDARD_12, np.ones(len(ws), bool), np.zeros(len(ws), bool), holdout)
    if task == "12lead-screen-0.2":  # the 0.2 bundle's LUDB labels
        ws = ludb_windows(root / "ludb", window_s)
        return TaskData(ws, STANDARD_12, np.ones(len(ws), bool), np.zeros(len(ws), bool))
    raise ConfigError("data.task", f"unknown task {task!r} (known: af, 12lead-screen, rhythm, vt-triage)")


def pretrain_corpus(root: Path, window_s: float = 10.0, per_record: int = 20,
                    hop_s: float | None = None) -> list[tuple[WindowSet, str, tuple[str, ...]]]:
    """Unlabeled windows of every folder with the layout its leads allow: (windows, layout, leads).

    Two-lead monitor data (MIT-BIH, CinC 2015) become strips, 12-lead LUDB the clinical layout,
    so the backbone sees both kinds of image the three bundles use. ``hop_s`` tiles each record
    (overlapping when shorter than ``window_s``) instead of taking ``per_record`` windows.
    """
    out = []
    for name in ("mitdb-ds1", "cinc2015-vt"):
        if (root / name).is_dir():
            out.append((unlabeled_windows([root / name], window_s, per_record, hop_s=hop_s), "strips", STRIP_LEADS))
    if (root / "ludb").is_dir():
        out.append((unlabeled_windows([root / "ludb" / "data"], window_s, 1), "12lead", STANDARD_12))
    if not out:
        raise ConfigError("data.shared", f"no mitdb-ds1, cinc2015-vt or ludb folder under {root}")
    return out
