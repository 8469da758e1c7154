"""Portable packs (training where the records are not) and the low-label study over all folds.

Packs: a round trip keeps every pixel, label and window; a damaged or foreign file is a
ConfigError naming it. The study: on 16 real LUDB windows at 64 px with 1 training step, every
record is tested exactly once across the folds, both arms share the label subsets, and two
single-arm halves merge into the table the README prints."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_ecg.errors import ConfigError
from edge_ecg.records.leads import STANDARD_12
from edge_ecg.render import RenderSpec
from export.datasets.cache import rendered
from export.datasets.pack import grey, load_pack, save_pack
from export.datasets.sources import ludb_windows
from export.train.tasks import TaskData

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def task(ludb_dir, tmp_path_factory):
    ws = ludb_windows(ludb_dir).subset(np.arange(16))
    spec = RenderSpec(layout="12lead", width=64, height=64)
    images = np.asarray(rendered(ws, spec, tmp_path_factory.mktemp("cache"), leads=STANDARD_12, progress=False))
    td = TaskData(ws, STANDARD_12, np.ones(len(ws), bool), np.zeros(len(ws), bool))
    return spec, td, images


def test_pack_round_trip_keeps_pixels_labels_and_windows(task, tmp_path):
    spec, td, images = task
    path = save_pack(tmp_path / "t.pack", images, spec.to_dict(), td, meta={"config": "x.toml"})
    p = load_pack(path)
    assert np.array_equal(np.repeat(p.images[..., None], 3, axis=-1), images)
    assert p.spec == spec.to_dict() and p.meta["config"] == "x.toml"
    assert p.task.windows.refs == td.windows.refs
    np.testing.assert_array_equal(p.task.windows.labels, td.windows.labels)
    assert path.stat().st_size < images.nbytes / 10  # grey + lzma: ECG paper is mostly white


def test_a_coloured_image_is_refused_rather_than_greyed():
    img = np.full((1, 8, 8, 3), 255, np.uint8)
    img[0, 0, 0] = (255, 0, 0)
    with pytest.raises(ValueError, match="not grey"):
        grey(img)


def test_a_damaged_or_foreign_pack_is_a_config_error_naming_it(task, tmp_path):
    spec, td, images = task
    path = save_pack(tmp_path / "t.pack", images[:2], spec.to_dict())
    cut = tmp_path / "cut.pack"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ConfigError, match="cut.pack"):
        load_pack(cut)
    other = tmp_path / "other.pack"
    other.write_bytes(pickle.dumps({"format": "something-else"}))
    with pytest.raises(ConfigError, match="not an edge-ecg-pack"):
        load_pack(other)
    with pytest.raises(ConfigError, match="not found"):
        load_pack(tmp_path / "missing.pack")


def test_lowlabel_study_tests_every_record_once_and_halves_merge(task, tmp_path):
    from export.train.lowlabel import format_lowlabel, merge_lowlabel, run_lowlabel
    from export.train.pretrain import PretrainConfig, pretrain

    spec, td, images = task
    torch.set_num_threads(1)
    pre = pretrain(images, PretrainConfig(size="tiny", img_size=64, steps=1, batch_size=4, threads=1, mask_bank=16),
                   tmp_path / "pre")
    cfg = tmp_path / "study.toml"
    cfg.write_text(f"""
[bundle]
name = "study"
[data]
task = "12lead-screen"
[init]
pretrained = "{pre.as_posix()}"
[finetune]
size = "tiny"
img_size = 64
steps = 1
batch_size = 4
eval_every = 1
warmup_steps = 1
threads = 1
[eval]
folds = 2
""")
    halves = [run_lowlabel(cfg, fractions=(0.25, 1.0), out=tmp_path, prepared=(spec, td, images), inits=(arm,))
              for arm in ("pretrained", "random")]
    assert all(h["test_windows"] == len(images) and h["test_records"] == len(images) for h in halves)
    assert [r["train_windows"] for r in halves[0]["rows"]] == [r["train_windows"] for r in halves[1]["rows"]]
    merged = merge_lowlabel(halves)
    assert {(r["fraction"], r["init"]) for r in merged["rows"]} == {(f, i) for f in (0.25, 1.0) for i in ("pretrained", "random")}
    table = format_lowlabel(merged)
    assert "every record tested once" in table and table.count("\n") == 3
    assert json.loads((tmp_path / "lowlabel-study-random.json").read_text())["rows"][0]["init"] == "random"
    halves[1]["steps"] = 99
    with pytest.raises(ValueError, match="steps"):
        merge_lowlabel(halves)
