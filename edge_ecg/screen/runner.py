"""The screening run: find records, skip what is already screened, classify in batches, report.

One record never stops the batch: whatever goes wrong with it (unreadable, too short, missing
leads, a rendering failure) becomes a "not screened" row with the reason. Only problems with the
run itself (no such input, a bad bundle, an output folder that cannot be written) raise.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge_ecg.errors import EdgeEcgError, InputError
from edge_ecg.screen.hashing import content_hash
from edge_ecg.screen.prepare import NotScreenable, Prepared, prepare
from edge_ecg.screen.progress import Progress
from edge_ecg.screen.report import LabelInfo, ReportContext, write_report
from edge_ecg.screen.results import (
    NOT_SCREENED,
    SCREENED,
    BundleId,
    RecordResult,
    ResultsWriter,
    foreign_results,
    read_results,
    write_results,
)

log = logging.getLogger(__name__)

AGGREGATES = ("max", "mean")
RESULTS_CSV = "results.csv"
PREVIOUS_CSV = "results.previous.csv"
INFERENCE_FAILED = "inference failed"
REPORT_HTML = "report.html"
IMAGES_DIR = "images"


@dataclass
class ScreenOptions:
    """How to run: output folder, resume or not, runtime selection, aggregation, batch size."""

    out_dir: Path = Path("screen-out")
    force: bool = False
    backend: str = "auto"
    precision: str = "int8"
    aggregate: str = "max"
    batch_size: int = 16
    threads: int | None = None
    progress: bool = True
    images: bool = True  # clinician-view PNG for each flagged record

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.aggregate not in AGGREGATES:
            raise InputError("--aggregate", f"must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.batch_size < 1:
            raise InputError("--batch-size", f"must be at least 1, got {self.batch_size}")


@dataclass
class ScreenSummary:
    """What a run did; ``results`` holds every row of the output (earlier runs' included)."""

    results: list[RecordResult]
    found: int
    screened: int  # classified in this run
    resumed: int  # skipped: already in the output for this bundle
    not_screened: int  # in this run, with a reason
    windows: int
    elapsed_s: float
    cpu_s: float  # CPU time of the whole process (all runtime threads): load-independent cost
    backend: str
    csv_path: Path
    report_path: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def records_per_s(self) -> float:
        done = self.screened + self.not_screened
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def flagged(self) -> int:
        return sum(1 for r in self.results if r.flagged)

    def line(self) -> str:
        return (f"screened {self.screened} record(s) ({self.windows} windows), {self.not_screened} not screened, "
                f"{self.resumed} already in the output; {self.flagged} flagged in total; "
                f"{self.elapsed_s:.1f} s ({self.cpu_s:.1f} s CPU), {self.records_per_s:.1f} records/s on {self.backend}")


@dataclass
class _Item:
    """One record found under an input: its display name, file and content key."""

    name: str
    path: Path
    key: str
    recognised: bool = True  # False: a file with an ECG extension the record finder did not take


# Files with these extensions in an input folder are ECG exports or look like them: one the record
# finder does not take (an empty or foreign .xml, a label table .csv) is listed with the reason,
# so nothing a cart exported is dropped without a word. (.txt is left out: READMEs, licences.)
_LOOKS_LIKE_ECG = (".edf", ".xml", ".csv")


def bundle_id(bundle) -> BundleId:
    """Name, version and a hash of ``bundle.toml`` (which holds the sha256 of every model file)."""
    from edge_ecg.bundle import MANIFEST, sha256_file

    return BundleId(bundle.name, bundle.version, sha256_file(Path(bundle.root) / MANIFEST))


def _display_name(path: Path, root: Path | None) -> str:
    rel = path.relative_to(root) if root is not None else Path(path.name)
    if rel.suffix.lower() in (".hea", ".dat", ".mat"):
        rel = rel.with_suffix("")
    return rel.as_posix()


def find_items(inputs: Sequence[str | Path]) -> list[_Item]:
    """Every record under ``inputs`` (files or folders, recursively), with its content hash,
    plus the files with an ECG extension that are not taken as records (to list with a reason)."""
    from edge_ecg.records import find_records

    items: list[_Item] = []
    seen: set[Path] = set()

    def add(path: Path, root: Path | None, recognised: bool) -> None:
        real = path.resolve()
        if real not in seen:
            seen.add(real)
            items.append(_Item(_display_name(path, root), path, content_hash(path), recognised))

    several = len(inputs) > 1
    for inp in map(Path, inputs):
        # with several inputs, names start at each folder's own name so data/1 of two folders differ
        root = (inp.parent if several else inp) if inp.is_dir() else None
        found = find_records([inp])  # RecordError naming the input when it does not exist
        for path in found:
            add(path, root, True)
        if inp.is_dir():
            taken = set(found)
            for path in sorted(inp.rglob("*")):
                if path.suffix.lower() in _LOOKS_LIKE_ECG and path not in taken and path.is_file():
                    add(path, root, False)
    return items


def _aggregate(probs: np.ndarray, how: str) -> np.ndarray:
    return probs.max(axis=0) if how == "max" else probs.mean(axis=0)


class _Batcher:
    """Collects windows of several records and classifies them in batches of ``size``.

    Records complete when all their windows are classified; completion order is input order.
    """

    def __init__(self, classifier, size: int) -> None:
        self.classifier = classifier
        self.size = size
        self.pending: list[tuple[_Item, Prepared]] = []
        self.windows: list = []
        self.probs: list[np.ndarray] = []
        self.infer_s = 0.0
        self.n_windows = 0
        self._error: Exception | None = None

    def add(self, item: _Item, prep: Prepared) -> list[tuple[_Item, Prepared, np.ndarray | Exception]]:
        self.pending.append((item, prep))
        self.windows.extend(prep.windows)
        done: list = []
        while len(self.windows) >= self.size:
            done += self._run(self.size)
        return done

    def flush(self) -> list:
        return self._run(len(self.windows)) if self.windows else []

    def _run(self, n: int) -> list:
        batch, self.windows = self.windows[:n], self.windows[n:]
        t0 = time.perf_counter()
        try:
            out = self._predict(batch)
        except Exception as exc:  # find the window(s) at fault: they fail their records, not the run
            log.warning("inference failed on a batch of %d windows (%s); retrying one by one", len(batch), exc)
            rows = []
            for w in batch:
                try:
                    rows.append(self._predict([w])[0])
                except Exception as exc1:
                    self._error = exc1
                    rows.append(np.full(len(self.classifier.bundle.labels), np.nan, dtype=np.float32))
            out = np.stack(rows)
        self.infer_s += time.perf_counter() - t0
        self.n_windows += len(batch)
        self.probs.append(out)
        return self._complete()

    def _predict(self, windows: list) -> np.ndarray:
        out = np.asarray(self.classifier.predict(windows), dtype=np.float32)
        if out.shape != (len(windows), len(self.classifier.bundle.labels)):
            raise EdgeEcgError(f"classifier returned shape {out.shape} for {len(windows)} windows")
        return out

    def _complete(self) -> list:
        have = sum(p.shape[0] for p in self.probs)
        done = []
        while self.pending and len(self.pending[0][1].windows) <= have:
            item, prep = self.pending.pop(0)
            k = len(prep.windows)
            allp = np.concatenate(self.probs, axis=0) if len(self.probs) > 1 else self.probs[0]
            mine, rest = allp[:k], allp[k:]
            self.probs = [rest] if rest.shape[0] else []
            have -= k
            if np.isnan(mine).any():
                done.append((item, prep, RuntimeError(f"{INFERENCE_FAILED}: {self._error or 'model returned NaN'}")))
            else:
                done.append((item, prep, mine))
        return done


def _write_snapshot(window, path: Path, title: str) -> None:
    """The renderer's clinician snapshot, stored as a 32-colour palette PNG at zlib level 1.

    ECG paper is a few reds plus an anti-aliased black trace, so 32 colours look the same as RGB
    while the file is ~2x smaller and written ~2.5x faster; the report inlines every flagged
    record's image, so this is most of its size and a large share of a run's time.
    """
    from PIL import Image

    from edge_ecg.render.snapshot import snapshot_image

    img = snapshot_image(window, title=title).quantize(32, method=Image.Quantize.FASTOCTREE)
    img.save(path, format="PNG", compress_level=1)


def _snapshot(prep: Prepared, probs: np.ndarray, labels: Sequence[str], flags: dict[str, bool],
              name: str, path: Path) -> tuple[str, str]:
    """Clinician-view PNG of the window that drove the top finding; returns (file name, note)."""
    flagged = [i for i, n in enumerate(labels) if flags[n]]
    top = max(flagged, key=lambda i: float(probs[:, i].max()))
    w = int(np.argmax(probs[:, top]))
    window = prep.windows[w]
    t0 = prep.starts[w] / prep.record.fs
    title = f"{name}  {t0:.0f}-{t0 + window.duration_s:.0f} s  {labels[top]} p={probs[w, top]:.2f}"
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_snapshot(window, path, title)
    note = f"image: window {w + 1} of {len(prep.windows)} ({t0:.0f}-{t0 + window.duration_s:.0f} s)" if len(prep.windows) > 1 else ""
    return path.name, note


def _plan(items: Sequence[_Item], csv_path: Path, labels: Sequence[str], bid: BundleId,
          force: bool) -> tuple[dict[str, RecordResult], list[_Item], int]:
    """Which earlier rows to keep (by content hash), which records to screen, how many are skipped."""
    other = foreign_results(csv_path, labels, bid)
    if other:
        if not force:
            raise InputError(csv_path, f"holds {other}, not of bundle {bid.name} {bid.version} (sha256 {bid.hash[:12]}); "
                                       f"screen into another --out, or pass --force to start over "
                                       f"(the old file is kept as {PREVIOUS_CSV})")
        os.replace(csv_path, csv_path.parent / PREVIOUS_CSV)
        log.warning("%s held %s; moved to %s", csv_path, other, PREVIOUS_CSV)
    earlier, bad = read_results(csv_path, labels)
    if bad:
        log.warning("%s: %d unusable row(s) ignored (interrupted run?); those records are screened again", csv_path, bad)
    keep: dict[str, RecordResult] = {}
    for r in earlier:
        # the last row for a hash wins; an inference failure may be transient, so it is retried
        if r.bundle.hash == bid.hash and not force and not r.reason.startswith(INFERENCE_FAILED):
            keep[r.content_hash] = r
    todo: list[_Item] = []
    resumed = 0
    queued: set[str] = set()
    for it in items:  # identical content twice in one run is screened once
        if it.key in keep or it.key in queued:
            resumed += 1
            continue
        queued.add(it.key)
        todo.append(it)
    log.info("%d record(s) found, %d already screened with %s %s, %d to screen",
             len(items), resumed, bid.name, bid.version, len(todo))
    return keep, todo, resumed


def screen(inputs: Sequence[str | Path], bundle, options: ScreenOptions | None = None,
           runtime=None) -> ScreenSummary:
    """Screen every record under ``inputs`` with ``bundle`` (a ``Bundle`` or its path).

    Writes ``results.csv`` and ``report.html`` (and ``images/``) into ``options.out_dir``.
    ``runtime`` overrides ``open_runtime(bundle, backend, precision, threads)`` (for reuse).
    """
    from edge_ecg.bundle import Bundle, load_bundle
    from edge_ecg.inference import Classifier
    from edge_ecg.records import read_record

    opts = options or ScreenOptions()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    spec = bundle.spec
    labels = list(bundle.label_names)
    thresholds = {lb.name: float(lb.threshold) for lb in bundle.labels}
    bid = bundle_id(bundle)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / RESULTS_CSV

    items = find_items(inputs)
    keep, todo, resumed = _plan(items, csv_path, labels, bid, opts.force)
    if not items:
        log.warning("no ECG records found under %s", ", ".join(map(str, inputs)))
    own_runtime = runtime is None and bool(todo)
    if own_runtime:
        from edge_ecg.runtimes import open_runtime

        runtime = open_runtime(bundle, backend=opts.backend, precision=opts.precision, threads=opts.threads)
    backend = runtime.describe() if runtime is not None else "-"
    classifier = Classifier(bundle, runtime, batch=opts.batch_size) if runtime is not None else None

    writer = ResultsWriter(csv_path, labels, keep.values())
    new: list[RecordResult] = []
    timings = {"read_s": 0.0, "image_s": 0.0}
    progress = Progress(len(todo)) if opts.progress and todo else None
    batcher = _Batcher(classifier, opts.batch_size) if classifier is not None else None

    def base(it: _Item, status: str, reason: str = "", notes: Iterable[str] = ()) -> RecordResult:
        return RecordResult(record=it.name, source=str(it.path), content_hash=it.key, status=status,
                            bundle=bid, reason=reason, aggregate=opts.aggregate, notes=list(notes))

    def finish(done: list) -> None:
        rows = []
        for it, prep, res in done:
            if isinstance(res, Exception):
                rows.append(base(it, NOT_SCREENED, str(res), prep.notes))
                continue
            agg = _aggregate(res, opts.aggregate)
            # rounded as results.csv stores them, so a flag always agrees with the number printed
            probs = {n: round(float(agg[i]), 6) for i, n in enumerate(labels)}
            flags = {n: probs[n] >= thresholds[n] for n in labels}
            r = base(it, SCREENED, notes=prep.notes)
            r.probabilities, r.flags, r.windows = probs, flags, len(prep.windows)
            if r.flagged and opts.images:
                t0 = time.perf_counter()
                img = out / IMAGES_DIR / f"{it.key[:16]}.png"
                try:
                    fname, note = _snapshot(prep, res, labels, flags, it.name, img)
                    r.image = f"{IMAGES_DIR}/{fname}"
                    if note:
                        r.notes.append(note)
                except Exception as exc:  # an image is a convenience: the result stands without it
                    log.warning("%s: could not draw the 12-lead image: %s", it.path, exc)
                    r.notes.append(f"no image ({exc})")
                timings["image_s"] += time.perf_counter() - t0
            rows.append(r)
        new.extend(rows)
        writer.append(rows)
        if progress and rows:
            progress.update(len(rows))

    try:
        for it in todo:
            t0 = time.perf_counter()
            try:
                prep = prepare(read_record(it.path), bundle, spec)
            except NotScreenable as exc:
                prep, reason = None, str(exc)
            except EdgeEcgError as exc:  # RecordError names the file; the row already does
                prep, reason = None, getattr(exc, "problem", str(exc))
                if not it.recognised:
                    reason = f"not recognised as an ECG record: {reason}"
            except Exception as exc:  # a reader bug must not stop the batch either
                prep, reason = None, f"cannot read: {type(exc).__name__}: {exc}"
            timings["read_s"] += time.perf_counter() - t0
            if prep is None:
                row = base(it, NOT_SCREENED, reason)
                new.append(row)
                writer.append([row])
                if progress:
                    progress.update(1)
                continue
            finish(batcher.add(it, prep))
        if batcher is not None:
            finish(batcher.flush())
    finally:
        writer.close()
        if progress:
            progress.close()
        if own_runtime:
            runtime.close()
    n_not = sum(1 for r in new if not r.screened)
    results = sorted(list(keep.values()) + new, key=lambda r: r.record)
    write_results(csv_path, results, labels)
    timings["infer_s"] = batcher.infer_s if batcher else 0.0
    notice = str(bundle.provenance.get("intended_use", "") or bundle.provenance.get("notice", ""))
    ctx = ReportContext(bundle_name=bid.name, bundle_version=bid.version, bundle_hash=bid.hash,
                        labels=tuple(LabelInfo(lb.name, float(lb.threshold), lb.priority) for lb in bundle.labels),
                        aggregate=opts.aggregate, backend=backend, notice=notice)
    t0 = time.perf_counter()
    report = write_report(out / REPORT_HTML, results, ctx)
    timings["report_s"] = time.perf_counter() - t0
    elapsed, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    return ScreenSummary(results=results, found=len(items), screened=sum(1 for r in new if r.screened),
                         resumed=resumed, not_screened=n_not, windows=batcher.n_windows if batcher else 0,
                         elapsed_s=elapsed, cpu_s=cpu, backend=backend, csv_path=csv_path, report_path=report, timings=timings)
