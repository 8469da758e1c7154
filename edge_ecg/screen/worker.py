"""Screening records: read, prepare, classify in batches, draw the clinician image.

The same ``Screener`` runs in the ``edge-ecg screen`` process itself, in each local worker
process, and on each Dask worker (``screen_chunk``): what a record's row says does not depend on
where it was screened. A worker returns rows and PNG bytes; only the coordinating process writes
``results.csv``, images and the report, so workers need to see the input files and the bundle,
not the output folder.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edge_ecg.errors import EdgeEcgError
from edge_ecg.screen.prepare import NotScreenable, Prepared, prepare
from edge_ecg.screen.results import NOT_SCREENED, SCREENED, BundleId, RecordResult

log = logging.getLogger(__name__)

INFERENCE_FAILED = "inference failed"


@dataclass(frozen=True)
class Job:
    """One record to screen: its display name, file and content key."""

    name: str
    path: str
    key: str
    recognised: bool = True  # False: a file with an ECG extension the record finder did not take


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to build its own runtime (picklable: it travels to other processes)."""

    bundle_path: str
    backend: str = "auto"
    precision: str = "int8"
    threads: int | None = None
    batch_size: int = 16
    aggregate: str = "max"
    images: bool = True
    keep_identifiers: bool = False


@dataclass
class Outcome:
    """A record's row, and its clinician image as PNG bytes (flagged records only)."""

    result: RecordResult
    png: bytes | None = None


@dataclass
class Timings:
    read_s: float = 0.0
    infer_s: float = 0.0
    image_s: float = 0.0
    windows: int = 0

    def add(self, other: "Timings") -> None:
        self.read_s += other.read_s
        self.infer_s += other.infer_s
        self.image_s += other.image_s
        self.windows += other.windows


def _aggregate(probs: np.ndarray, how: str) -> np.ndarray:
    return probs.max(axis=0) if how == "max" else probs.mean(axis=0)


class _Batcher:
    """Collects windows of several records and classifies them in batches of ``size``.

    Records complete when all their windows are classified; completion order is input order.
    """

    def __init__(self, classifier, size: int, timings: Timings) -> None:
        self.classifier = classifier
        self.size = size
        self.pending: list[tuple[Job, Prepared]] = []
        self.windows: list = []
        self.probs: list[np.ndarray] = []
        self.timings = timings
        self._error: Exception | None = None

    def add(self, job: Job, prep: Prepared) -> list[tuple[Job, Prepared, np.ndarray | Exception]]:
        self.pending.append((job, prep))
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
        self.timings.infer_s += time.perf_counter() - t0
        self.timings.windows += len(batch)
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
            job, prep = self.pending.pop(0)
            k = len(prep.windows)
            allp = np.concatenate(self.probs, axis=0) if len(self.probs) > 1 else self.probs[0]
            mine, rest = allp[:k], allp[k:]
            self.probs = [rest] if rest.shape[0] else []
            have -= k
            if np.isnan(mine).any():
                done.append((job, prep, RuntimeError(f"{INFERENCE_FAILED}: {self._error or 'model returned NaN'}")))
            else:
                done.append((job, prep, mine))
        return done


def snapshot_png(window, title: str) -> bytes:
    """The renderer's clinician snapshot as a 32-colour palette PNG at zlib level 1.

    ECG paper is a few reds plus an anti-aliased black trace, so 32 colours look the same as RGB
    while the file is ~2x smaller and written ~2.5x faster; the report inlines every flagged
    record's image, so this is most of its size and a large share of a run's time.
    """
    import io

    from PIL import Image

    from edge_ecg.render.snapshot import snapshot_image

    img = snapshot_image(window, title=title).quantize(32, method=Image.Quantize.FASTOCTREE)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _snapshot(prep: Prepared, probs: np.ndarray, labels: Sequence[str], flags: dict[str, bool],
              name: str) -> tuple[bytes, str]:
    """Clinician-view PNG of the window that drove the top finding; returns (PNG bytes, note)."""
    flagged = [i for i, n in enumerate(labels) if flags[n]]
    top = max(flagged, key=lambda i: float(probs[:, i].max()))
    w = int(np.argmax(probs[:, top]))
    window = prep.windows[w]
    t0 = prep.starts[w] / prep.record.fs
    from edge_ecg.screen.labels import display_name
    from edge_ecg.screen.report import percent

    title = f"{name}  {t0:.0f}-{t0 + window.duration_s:.0f} s  {display_name(labels[top])} {percent(float(probs[w, top]))}"
    png = snapshot_png(window, title)
    note = f"image: window {w + 1} of {len(prep.windows)} ({t0:.0f}-{t0 + window.duration_s:.0f} s)" if len(prep.windows) > 1 else ""
    return png, note


class Screener:
    """Screens jobs with one bundle and one runtime; rows come out in input order as batches fill."""

    def __init__(self, bundle, runtime, opts: WorkerOptions, bid: BundleId) -> None:
        from edge_ecg.inference import Classifier

        self.bundle = bundle
        self.spec = bundle.spec
        self.labels = list(bundle.label_names)
        self.thresholds = {lb.name: float(lb.threshold) for lb in bundle.labels}
        self.opts = opts
        self.bid = bid
        self.timings = Timings()
        self._patients: dict[str, dict[str, str]] = {}
        self.batcher = _Batcher(Classifier(bundle, runtime, batch=opts.batch_size), opts.batch_size, self.timings)

    def _base(self, job: Job, status: str, reason: str = "", notes=()) -> RecordResult:
        return RecordResult(record=job.name, source=job.path, content_hash=job.key, status=status, bundle=self.bid,
                            reason=reason, aggregate=self.opts.aggregate, notes=list(notes))

    def add(self, job: Job) -> list[Outcome]:
        from edge_ecg.records import anonymize, identifiers, read_record
        from edge_ecg.records.checks import plain_words

        t0 = time.perf_counter()
        patient: dict[str, str] = {}
        try:
            record = read_record(job.path)
            if self.opts.keep_identifiers:
                patient = identifiers(record)
            record = anonymize(record)  # nothing past this point sees who the patient is
            prep = prepare(record, self.bundle, self.spec)
        except NotScreenable as exc:
            prep, reason = None, str(exc)
        except EdgeEcgError as exc:  # RecordError names the file; the row already does
            prep, reason = None, plain_words(getattr(exc, "problem", exc))
            if not job.recognised:
                reason = f"not recognised as an ECG record: {reason}"
        except Exception as exc:  # a reader bug must not stop the batch either
            prep, reason = None, f"cannot read: {type(exc).__name__}: {plain_words(exc)}"
        self.timings.read_s += time.perf_counter() - t0
        if prep is None:
            return [Outcome(self._base(job, NOT_SCREENED, reason))]
        if patient:  # identifiers travel in the row's own field (only with keep_identifiers), never in notes
            self._patients[job.key] = patient
        return self._finish(self.batcher.add(job, prep))

    def flush(self) -> list[Outcome]:
        return self._finish(self.batcher.flush())

    def _finish(self, done: list) -> list[Outcome]:
        out = []
        for job, prep, res in done:
            if isinstance(res, Exception):
                out.append(Outcome(self._base(job, NOT_SCREENED, str(res), prep.notes)))
                continue
            agg = _aggregate(res, self.opts.aggregate)
            # rounded as results.csv stores them, so a flag always agrees with the number printed
            probs = {n: round(float(agg[i]), 6) for i, n in enumerate(self.labels)}
            flags = {n: probs[n] >= self.thresholds[n] for n in self.labels}
            r = self._base(job, SCREENED, notes=prep.notes)
            r.probabilities, r.flags, r.windows = probs, flags, len(prep.windows)
            r.patient = self._patients.pop(job.key, {})
            png = None
            if r.flagged and self.opts.images:
                t0 = time.perf_counter()
                try:
                    png, note = _snapshot(prep, res, self.labels, flags, job.name)
                    if note:
                        r.notes.append(note)
                except Exception as exc:  # an image is a convenience: the result stands without it
                    log.warning("%s: could not draw the 12-lead image: %s", job.path, exc)
                    r.notes.append(f"no image ({exc})")
                self.timings.image_s += time.perf_counter() - t0
            out.append(Outcome(r, png))
        return out


# One screener per worker process (and per options): the bundle is loaded and verified, and the
# runtime built, once for all the chunks that process screens.
_SCREENERS: dict[WorkerOptions, Screener] = {}


def worker_screener(opts: WorkerOptions) -> Screener:
    if opts not in _SCREENERS:
        from edge_ecg.bundle import load_bundle
        from edge_ecg.runtimes import open_runtime
        from edge_ecg.screen.runner import bundle_id

        bundle = load_bundle(opts.bundle_path)
        runtime = open_runtime(bundle, backend=opts.backend, precision=opts.precision, threads=opts.threads or 1)
        _SCREENERS[opts] = Screener(bundle, runtime, opts, bundle_id(bundle))
    return _SCREENERS[opts]


def screen_chunk(jobs: Sequence[Job], opts: WorkerOptions) -> tuple[list[Outcome], Timings, str]:
    """Screen ``jobs`` in this process (a local worker or a Dask worker): rows, where the time
    went, and the runtime's description. Every job gets a row, whatever goes wrong with it."""
    s = worker_screener(opts)
    before = Timings(s.timings.read_s, s.timings.infer_s, s.timings.image_s, s.timings.windows)
    out: list[Outcome] = []
    for job in jobs:
        out += s.add(job)
    out += s.flush()
    spent = Timings(s.timings.read_s - before.read_s, s.timings.infer_s - before.infer_s,
                    s.timings.image_s - before.image_s, s.timings.windows - before.windows)
    return out, spent, s.batcher.classifier.runtime.describe()


def write_png(out_dir: Path, images_dir: str, outcome: Outcome) -> None:
    """Store an outcome's image beside the results and point its row at it."""
    if outcome.png is None:
        return
    path = out_dir / images_dir / f"{outcome.result.content_hash[:16]}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(outcome.png)
    outcome.result.image = f"{images_dir}/{path.name}"
