"""The pretraining corpus: every record tiled in every layout the bundles use, plus synthetic
12-lead ECGs, rendered once into shards that training streams, never loads whole.

A corpus is a folder::

    manifest.json        format, the layouts' RenderSpecs, every shard (file, images, source, layout)
    parts/<name>.json    one per finished (source, layout) part: a rerun skips it (resumable build)
    shards/<part>-00000.npz   grey uint8 images (N, H, W), at most ``shard_size`` per file

Each part (one source in one layout) is written in record order, so a shard holds one kind of
image; ``CorpusStream`` mixes several shards in a shuffle buffer so a batch does not. The same
code serves 20,000 images on a laptop and millions on a GPU box: memory is bounded by
``mix x shard_size`` images whatever the corpus size, and each distributed rank reads only its
own shards.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from edge_ecg.errors import ConfigError, RecordError

log = logging.getLogger(__name__)

FORMAT = "edge-ecg-corpus/1"


@dataclass(frozen=True)
class CorpusLayout:
    """One kind of image: a RenderSpec and the leads selected before rendering (the bundle's
    ``[input] leads``; empty = as the spec draws them)."""

    name: str
    spec: dict
    input_leads: tuple[str, ...] = ()

    @property
    def render_spec(self):
        from edge_ecg.render import RenderSpec

        return RenderSpec.from_dict(self.spec)

    def accepts(self, leads: Sequence[str]) -> bool:
        """Whether a record with ``leads`` can be drawn in this layout."""
        from edge_ecg.records.leads import STANDARD_12

        if self.render_spec.layout == "12lead":
            return all(l in leads for l in STANDARD_12)
        return len(leads) >= max(1, len(self.input_leads))


@dataclass
class CorpusConfig:
    """``[corpus]`` of a pretraining config plus its ``[layouts.*]`` tables."""

    layouts: list[CorpusLayout]
    sources: list[str] = field(default_factory=lambda: ["cinc2017", "mitdb-ds1", "cinc2015-vt", "ludb", "ptbxl"])
    hop_s: float = 5.0
    shard_size: int = 2048
    synthetic: int = 0           # N synthetic 12-lead ECGs (deepfake-ecg)
    synthetic_seed: int = 0
    synthetic_device: str = "cpu"
    workers: int = 1             # rendering processes (a GPU box has many cores; 1 = in this process)


def corpus_config(cfg: dict) -> CorpusConfig:
    """Read ``[corpus]`` and ``[layouts.<name>]`` (each a RenderSpec table plus ``input_leads``)."""
    table = dict(cfg.get("corpus", {}))
    raw = cfg.get("layouts", {})
    if not raw:
        raise ConfigError(f"{cfg.get('_path', '<config>')}: [layouts]", "a corpus needs at least one [layouts.<name>] table")
    layouts = []
    for name, spec in raw.items():
        spec = dict(spec)
        leads = tuple(spec.pop("input_leads", ()))
        layouts.append(CorpusLayout(name, spec, leads))
        layouts[-1].render_spec  # validates the spec now, naming the key
    sizes = {(l.render_spec.width, l.render_spec.height) for l in layouts}
    if len(sizes) != 1:
        raise ConfigError(f"{cfg.get('_path', '<config>')}: [layouts]", f"all layouts must share one image size (one model), got {sorted(sizes)}")
    known = {"out", "sources", "hop_s", "shard_size", "synthetic", "synthetic_seed", "synthetic_device", "workers"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{cfg.get('_path', '<config>')}: [corpus]", f"unknown keys {unknown} (known: {sorted(known)})")
    table.pop("out", None)
    return CorpusConfig(layouts=layouts, **table)


# --- building ----------------------------------------------------------------------------------

class _ShardWriter:
    """Buffers images of one part and writes ``shard_size`` at a time, atomically."""

    def __init__(self, folder: Path, part: str, shard_size: int) -> None:
        self.folder, self.part, self.size = folder, part, shard_size
        self.buf: list[np.ndarray] = []
        self.written: list[dict] = []

    def add(self, image: np.ndarray) -> None:
        self.buf.append(image[..., 0] if image.ndim == 3 else image)  # the renderer's channels are equal
        if len(self.buf) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        name = f"{self.part}-{len(self.written):05d}.npz"
        tmp = self.folder / f".{name}.{os.getpid()}.tmp.npz"
        np.savez_compressed(tmp, images=np.stack(self.buf))
        os.replace(tmp, self.folder / name)
        self.written.append({"file": f"shards/{name}", "images": len(self.buf)})
        self.buf = []


def _record_windows(folder: Path, window_s: float, hop_s: float) -> Iterator[tuple[Path, list[int], int]]:
    """(header, window starts, window length in samples) of every WFDB record under ``folder``."""
    from export.datasets.sources import _header_info, wfdb_records

    for hea in wfdb_records(folder):
        fs, n = _header_info(hea)
        w = int(round(window_s * fs))
        if n < w:
            continue
        yield hea, list(range(0, n - w + 1, max(1, int(round(hop_s * fs))))), w


def _records_for(root: Path, source: str) -> Path:
    folder = root / source
    for sub in ("data", "records500"):  # LUDB, PTB-XL keep their records one level down
        if (folder / sub).is_dir():
            return folder / sub
    return folder


def _render_one(args) -> np.ndarray:
    from edge_ecg.records.lead_select import select_leads
    from edge_ecg.render import render

    rec, spec, leads = args
    return render(select_leads(rec, leads), spec)


def _render_part(windows: Iterable, layout: CorpusLayout, writer: _ShardWriter, workers: int = 1) -> int:
    """Render ``windows`` in order into ``writer``; with ``workers`` > 1 in a process pool."""
    spec, n = layout.render_spec, 0
    jobs = ((rec, spec, layout.input_leads) for rec in windows)
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            for img in pool.imap(_render_one, jobs, chunksize=64):
                writer.add(img)
                n += 1
    else:
        for job in jobs:
            writer.add(_render_one(job))
            n += 1
    writer.flush()
    return n


def _shared_windows(root: Path, source: str, layout: CorpusLayout, hop_s: float) -> Iterator:
    """Record windows of ``source`` that ``layout`` can draw (read once per record)."""
    from edge_ecg.records import read_record

    for hea, starts, w in _record_windows(_records_for(root, source), layout.render_spec.seconds, hop_s):
        try:
            rec = read_record(hea)
        except RecordError as exc:
            log.warning("corpus: skipped %s (%s)", hea, exc)
            continue
        if not layout.accepts(rec.leads):
            continue
        for s in starts:
            yield rec.slice(s, s + w)


def _synthetic_windows(n: int, seed: int, layout: CorpusLayout, device: str) -> Iterator:
    from export.datasets.synthetic import synthetic_ecgs

    w = None
    for rec in synthetic_ecgs(n, seed=seed, device=device):
        w = w or int(round(layout.render_spec.seconds * rec.fs))
        if rec.n_samples >= w:
            yield rec.slice(0, w)


def build_corpus(cfg: CorpusConfig, root: Path, out: Path) -> dict:
    """Render every part not already built into ``out`` and write ``manifest.json``; returns it."""
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    jobs = [(src, lay) for src in cfg.sources for lay in cfg.layouts]
    if cfg.synthetic:
        jobs += [(f"deepfake-ecg-{cfg.synthetic}-seed{cfg.synthetic_seed}", lay) for lay in cfg.layouts]
    for source, layout in jobs:
        part = f"{source}.{layout.name}"
        done = out / "parts" / f"{part}.json"
        if done.is_file():
            continue
        t0 = time.monotonic()
        writer = _ShardWriter(out / "shards", part, cfg.shard_size)
        if source.startswith("deepfake-ecg"):
            if layout.render_spec.layout == "strips" and len(layout.input_leads) > 1:
                windows = iter(())  # a synthetic 12-lead has no monitor's second lead; drawn as 12-lead and one-lead strips
            else:
                windows = _synthetic_windows(cfg.synthetic, cfg.synthetic_seed, layout, cfg.synthetic_device)
        elif not (root / source).is_dir():
            raise ConfigError("corpus.sources", f"{root / source} is not a folder")
        else:
            windows = _shared_windows(root, source, layout, cfg.hop_s)
        n = _render_part(windows, layout, writer, cfg.workers)
        info = {"part": part, "source": source, "layout": layout.name, "images": n, "shards": writer.written,
                "seconds": round(time.monotonic() - t0, 1)}
        done.write_text(json.dumps(info, indent=1))
        log.info("corpus part %s: %d images in %.0f s", part, n, info["seconds"])
    return write_manifest(cfg, out)


def add_images_part(out: Path, part: str, source: str, layout: str, images: np.ndarray, shard_size: int = 2048) -> dict:
    """Images rendered elsewhere (a portable pack, ``export.datasets.pack``) as one more corpus part,
    so a GPU box without the records pretrains on them too; ``write_manifest`` lists it."""
    out = Path(out)
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "parts").mkdir(exist_ok=True)
    writer = _ShardWriter(out / "shards", part, shard_size)
    for img in images:
        writer.add(np.asarray(img))
    writer.flush()
    info = {"part": part, "source": source, "layout": layout, "images": int(len(images)), "shards": writer.written, "seconds": 0.0}
    (out / "parts" / f"{part}.json").write_text(json.dumps(info, indent=1))
    return info


def write_manifest(cfg: CorpusConfig, out: Path) -> dict:
    parts = [json.loads(p.read_text()) for p in sorted((Path(out) / "parts").glob("*.json"))]
    shards = [{**s, "source": p["source"], "layout": p["layout"]} for p in parts for s in p["shards"]]
    manifest = {
        "format": FORMAT,
        "layouts": {l.name: {"spec": l.spec, "input_leads": list(l.input_leads)} for l in cfg.layouts},
        "images": int(sum(s["images"] for s in shards)),
        "by_part": {p["part"]: p["images"] for p in parts},
        "shards": shards,
        "synthetic": {"n": cfg.synthetic, "seed": cfg.synthetic_seed, "package": "deepfake-ecg (Pulse2Pulse, MIT licence)"},
    }
    tmp = Path(out) / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(Path(out) / "manifest.json")
    return manifest


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(path, "no corpus manifest (build it with `edge-ecg train corpus CONFIG`)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(path, f"not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT:
        raise ConfigError(path, f"not an {FORMAT} manifest")
    if not manifest.get("shards"):
        raise ConfigError(path, "the corpus has no shards")
    return manifest


# --- streaming -----------------------------------------------------------------------------------

class CorpusStream:
    """Endless batches of grey uint8 images from a corpus folder, for one rank of ``world``.

    Each epoch deals a seeded permutation of the shards round-robin to the ranks (rank r reads
    shards r, r + world, ...), so ranks never read the same image in an epoch and no rank loads
    the corpus whole; ``mix`` shards at a time are pooled and shuffled so a batch mixes sources
    and layouts. ``start_images`` (images the whole job has consumed, from a checkpoint) resumes
    at the right epoch and about the right place in it, whatever the world size was before.
    """

    def __init__(self, folder: Path, rank: int = 0, world: int = 1, seed: int = 0, mix: int = 4,
                 start_images: int = 0) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        self.shards = self.manifest["shards"]
        self.total = int(self.manifest["images"])
        self.rank, self.world, self.seed, self.mix = int(rank), int(world), int(seed), max(1, int(mix))
        self.start_images = int(start_images)
        if not 0 <= self.rank < self.world:
            raise ValueError(f"rank {rank} outside world size {world}")

    def _my_shards(self, epoch: int) -> list[int]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.shards))
        mine = list(order[self.rank::self.world])
        return mine or [int(order[self.rank % len(order)])]  # fewer shards than ranks: share one

    def _load(self, i: int) -> np.ndarray:
        path = self.folder / self.shards[i]["file"]
        try:
            with np.load(path) as z:
                return z["images"]
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigError(path, f"unreadable corpus shard ({exc})") from None

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        epoch, frac = divmod(self.start_images, max(1, self.total))
        skip_fraction = frac / max(1, self.total)
        carry = np.zeros((0,), dtype=np.uint8)
        while True:
            mine = self._my_shards(epoch)
            groups = [mine[i:i + self.mix] for i in range(0, len(mine), self.mix)]
            first = int(skip_fraction * len(groups)) if skip_fraction else 0
            skip_fraction = 0.0
            rng = np.random.default_rng([self.seed, epoch, self.rank])
            for group in groups[first:]:
                pool = np.concatenate([self._load(i) for i in group])
                pool = pool[rng.permutation(len(pool))]
                if carry.size:
                    pool = np.concatenate([carry, pool])
                stop = len(pool) - len(pool) % batch_size
                for i in range(0, stop, batch_size):
                    yield pool[i:i + batch_size]
                carry = pool[stop:]
            epoch += 1


class ArrayStream:
    """The same interface over images already in memory (tests, packs, the render cache)."""

    def __init__(self, images: np.ndarray, rank: int = 0, world: int = 1, seed: int = 0, start_images: int = 0) -> None:
        self.images = images
        self.total = len(images)
        self.rank, self.world, self.seed, self.start_images = rank, world, seed, int(start_images)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        epoch = self.start_images // max(1, self.total)
        while True:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.total)[self.rank::self.world]
            order = order if len(order) else np.arange(self.total)
            for i in range(0, max(1, len(order) - batch_size + 1), batch_size):
                yield np.asarray(self.images[np.sort(order[i:i + batch_size])])
            epoch += 1
