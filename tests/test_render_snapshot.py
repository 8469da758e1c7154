"""Clinician snapshot PNG, the render CLI as a real process, and the benchmark's reference renderer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from edge_ecg.records import read_record
from edge_ecg.render import RenderSpec, render, snapshot_png
from edge_ecg.render.snapshot import HEADER_PX, PX_PER_MM

REPO = Path(__file__).resolve().parents[1]


def test_snapshot_is_ecg_paper_with_traces_and_labels(ludb_dir, tmp_path):
    rec = read_record(ludb_dir / "data" / "1.hea")
    path = snapshot_png(rec, tmp_path / "sub" / "snap.png", title="LUDB 1")
    img = np.asarray(Image.open(path).convert("RGB"))
    # 10 s at 25 mm/s = 250 mm of trace + 2 x 10 mm margins, 5 px/mm; 4 rows of 40 mm + header
    assert img.shape == (HEADER_PX + 4 * 40 * 5, (250 + 20) * 5, 3)
    grid = img[HEADER_PX:]
    pink = (grid[..., 0] > 200) & (grid[..., 1] < 230) & (grid[..., 1] > 100)
    assert pink.mean() > 0.1  # the paper grid
    # 5 mm major lines every 25 px: the columns at x = 0.5 + 25k are pinker than those between
    major = grid[:, 0::25, 1].mean()
    between = grid[:, 12::25, 1].mean()
    assert major < between - 20
    black = grid.max(axis=2) < 80
    for band in range(4):  # every row holds trace ink around its zero line
        rows = black[band * 200 : band * 200 + 200, 60:1300]
        assert rows.any(axis=0).mean() > 0.9, band
        ys = np.nonzero(rows)[0]
        assert abs(np.median(ys) - 100) < 10
    assert (img[:HEADER_PX].max(axis=2) < 80).sum() > 200  # header text
    # the same window gives the same bytes
    again = snapshot_png(rec, tmp_path / "again.png", title="LUDB 1")
    assert again.read_bytes() == path.read_bytes()


def test_snapshot_of_a_two_lead_monitor(mitdb_dir, tmp_path):
    rec = read_record(mitdb_dir / "101").slice(0, 3600)
    img = np.asarray(Image.open(snapshot_png(rec, tmp_path / "m.png")))
    assert img.shape[0] == HEADER_PX + 2 * 40 * int(PX_PER_MM)


def test_render_cli_writes_model_and_paper_images(ludb_dir, cinc_vt_dir, tmp_path, capsys):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "edge_ecg", "render", str(ludb_dir / "data" / "7.hea"), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "rendered 1 window(s)" in run.stdout and "layout 12lead" in run.stdout
    model = np.asarray(Image.open(out / "7_w000_model.png"))
    assert model.shape == (224, 224, 3)
    assert np.array_equal(model, render(read_record(ludb_dir / "data" / "7.hea"), RenderSpec()))
    assert (out / "7_w000_paper.png").is_file()
    from edge_ecg.cli import main  # the same entry point in-process: one real process above is enough

    assert main(["render", str(cinc_vt_dir / "v100s.hea"), "--out", str(out), "--max-windows", "3", "--hop", "5"]) == 0
    assert "layout strips" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("v100s_*_model.png")) == [f"v100s_w00{k}_model.png" for k in range(3)]
    assert main(["render", str(tmp_path / "nope.edf"), "--out", str(out)]) == 2
    assert "nope.edf: no such file" in capsys.readouterr().err


def test_matplotlib_reference_draws_the_same_layout():
    from edge_ecg.render.benchmark import MatplotlibRenderer, synthetic_window

    window = synthetic_window()
    ours = 1.0 - render(window).min(axis=2) / 255.0
    ref = 1.0 - MatplotlibRenderer(RenderSpec())(window).min(axis=2) / 255.0
    # both put the same traces in the same places: ink profiles per band agree closely
    for band in range(4):
        a, b = ours[band * 56 : band * 56 + 56].sum(axis=0), ref[band * 56 : band * 56 + 56].sum(axis=0)
        assert np.corrcoef(a, b)[0, 1] > 0.8, band
