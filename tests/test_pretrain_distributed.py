"""The sharded pretraining corpus and pretraining under torchrun (DDP, gloo, 2 CPU processes).

A real corpus is rendered from LUDB records (64 px, two layouts), streamed shard by shard; the
same `edge-ecg train pretrain` command runs as 2 processes under `torchrun` for a few steps,
then resumes alone (world size 1) from the checkpoint the 2-process job wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.datasets.corpus import CorpusConfig, CorpusLayout, CorpusStream, build_corpus, read_manifest

pytestmark = pytest.mark.shared_data
REPO = Path(__file__).resolve().parents[1]

SPEC = {"width": 64, "height": 64, "line_width": 1.0}
LAYOUTS = [CorpusLayout("12lead", {"layout": "12lead", "mm_per_mv": 20.0, **SPEC}),
           CorpusLayout("af", {"layout": "strips", "seconds": 9.0, "mm_per_mv": 40.0, **SPEC}, ("II",))]


N_RECORDS = 40  # real LUDB records, linked into a small shared-folder layout (the whole folder is 5x the time)


@pytest.fixture(scope="module")
def small_root(ludb_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("shared")
    data = root / "ludb" / "data"
    data.mkdir(parents=True)
    for hea in sorted((ludb_dir / "data").glob("*.hea"))[:N_RECORDS]:
        for f in hea.parent.glob(hea.stem + ".*"):
            if f.suffix in (".hea", ".dat"):
                (data / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def corpus(small_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    cfg = CorpusConfig(layouts=LAYOUTS, sources=["ludb"], hop_s=5.0, shard_size=12)
    manifest = build_corpus(cfg, small_root, out)
    return out, manifest


def test_corpus_tiles_every_record_in_each_layout_and_a_rerun_skips_done_parts(corpus, small_root):
    out, manifest = corpus
    n_ludb = N_RECORDS
    # 10 s records: one 10 s 12-lead window, and 9 s one-lead windows at 0 s (hop 5 s leaves no second)
    assert manifest["by_part"] == {"ludb.12lead": n_ludb, "ludb.af": n_ludb}
    assert sum(s["images"] for s in manifest["shards"]) == 2 * n_ludb
    assert all(s["images"] <= 12 for s in manifest["shards"])
    with np.load(out / manifest["shards"][0]["file"]) as z:
        assert z["images"].dtype == np.uint8 and z["images"].shape[1:] == (64, 64)
    stamp = {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    build_corpus(CorpusConfig(layouts=LAYOUTS, sources=["ludb"], hop_s=5.0, shard_size=12), small_root, out)
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == stamp  # nothing re-rendered


def test_ranks_stream_disjoint_shards_that_cover_the_corpus(corpus):
    out, manifest = corpus
    a, b = CorpusStream(out, 0, 2, seed=3), CorpusStream(out, 1, 2, seed=3)
    mine_a, mine_b = set(a._my_shards(0)), set(b._my_shards(0))
    assert not mine_a & mine_b and mine_a | mine_b == set(range(len(manifest["shards"])))
    assert a._my_shards(1) != a._my_shards(0) or len(manifest["shards"]) < 3  # reshuffled per epoch
    batch = next(a.batches(16))
    assert batch.shape == (16, 64, 64) and batch.dtype == np.uint8


def test_a_broken_manifest_is_a_config_error_naming_it(tmp_path):
    from edge_ecg.errors import ConfigError

    with pytest.raises(ConfigError, match="manifest"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="edge-ecg-corpus/1"):
        read_manifest(tmp_path)


def _config(tmp: Path, corpus: Path) -> Path:
    cfg = tmp / "pretrain.toml"
    cfg.write_text(f'''[corpus]
out = "{corpus.as_posix()}"
[layouts.12lead]
layout = "12lead"
width = 64
height = 64
[pretrain]
size = "tiny"
img_size = 64
steps = 3
batch_size = 8
warmup_steps = 1
threads = 1
checkpoint_every = 1
mask_bank = 64
device = "cpu"
[output]
dir = "{(tmp / 'out').as_posix()}"
''')
    return cfg


def test_torchrun_two_cpu_processes_pretrain_then_resume_alone(corpus, tmp_path):
    out, _ = corpus
    cfg = _config(tmp_path, out)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "edge_ecg", "train", "pretrain", str(cfg)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    state = torch.load(tmp_path / "out" / "last.pt", weights_only=False)
    assert state["step"] == 3 and state["world_size"] == 2 and state["images_seen"] == 3 * 8
    assert [h["step"] for h in state["history"]] == [3] or state["history"][-1]["step"] == 3
    # the same command, one process, resumes the 2-process job's checkpoint (another world size)
    run = subprocess.run([sys.executable, "-m", "edge_ecg", "train", "pretrain", str(cfg), "--steps", "5"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "resumed pretraining" in run.stderr and "at step 3" in run.stderr
    state2 = torch.load(tmp_path / "out" / "last.pt", weights_only=False)
    assert state2["step"] == 5 and state2["world_size"] == 1 and state2["images_seen"] == 5 * 8
    assert np.isfinite([h["loss"] for h in state2["history"]]).all()
    from export.models.heartbeit import load_checkpoint

    model, extra = load_checkpoint(tmp_path / "out" / "pretrained.pt")
    assert model.cfg.img_size == 64 and extra["world_size"] == 1 and extra["images_seen"] == 40
