"""The screening run: walk the inputs, skip what is already screened, screen the rest, report.

One record never stops the batch: whatever goes wrong with it (unreadable, too short, missing
leads, a rendering failure, a worker process that dies) becomes a "not screened" row with the
reason. Only problems with the run itself (no such input, a bad bundle, an output folder that
cannot be written, a Dask scheduler that cannot be reached) raise.

Where records are screened (``edge_ecg.screen.executors``): in this process (one worker), in
local worker processes with one inference thread each (``workers`` > 1: all cores), or on a
Dask cluster (``scheduler``). The input walk is streamed into them, so an archive of millions of
files is never listed in memory; this process hashes each record (the resume key), writes the
rows as they come back (``results.csv`` is appended and flushed), the images and the report.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from edge_ecg.errors import InputError
from edge_ecg.screen.hashing import content_hash
from edge_ecg.screen.inputs import Found, walk_inputs, walk_list
from edge_ecg.screen.progress import Progress
from edge_ecg.screen.report import ReportContext, write_report
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
from edge_ecg.screen.worker import INFERENCE_FAILED, Job, Timings, WorkerOptions, write_png

log = logging.getLogger(__name__)

AGGREGATES = ("max", "mean")
RESULTS_CSV = "results.csv"
PREVIOUS_CSV = "results.previous.csv"
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
    workers: int = 1  # local processes (one inference thread each); 1 = screen in this process
    scheduler: str | None = None  # a Dask scheduler address (tcp://host:8786): screen on its workers
    chunk_size: int = 8  # records per task sent to a worker
    keep_identifiers: bool = False  # patient name/id/birth date in results.csv and the report
    input_list: Path | None = None  # a file of paths, one per line ("-": standard input), read as it goes

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.aggregate not in AGGREGATES:
            raise InputError("--aggregate", f"must be one of {', '.join(AGGREGATES)}, got {self.aggregate!r}")
        if self.batch_size < 1:
            raise InputError("--batch-size", f"must be at least 1, got {self.batch_size}")
        if self.workers < 1:
            raise InputError("--workers", f"must be at least 1, got {self.workers}")
        if self.chunk_size < 1:
            raise InputError("chunk_size", f"must be at least 1, got {self.chunk_size}")


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
    where: str = "this process"  # where records were screened: this process, N local processes, a Dask cluster

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
                f"{self.elapsed_s:.1f} s ({self.cpu_s:.1f} s CPU here), {self.records_per_s:.1f} records/s on {self.backend} "
                f"({self.where})")


def bundle_id(bundle) -> BundleId:
    """Name, version and a hash of ``bundle.toml`` (which holds the sha256 of every model file)."""
    from edge_ecg.bundle import MANIFEST, sha256_file

    return BundleId(bundle.name, bundle.version, sha256_file(Path(bundle.root) / MANIFEST))


def _list_walk(path: Path) -> Iterator[Found]:
    if str(path) == "-":
        yield from walk_list(sys.stdin)
        return
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(path, f"cannot read the input list: {exc.strerror or exc}") from exc
    with fh:
        yield from walk_list(fh)


def _path_key(found: Found) -> str:
    """The key of a path that cannot be read (a broken link has no content): its path and reason."""
    import hashlib

    return hashlib.sha256(f"path:{found.path}\n{found.reason}".encode()).hexdigest()


def _previous(csv_path: Path, labels: Sequence[str], bid: BundleId, force: bool) -> dict[str, RecordResult]:
    """Earlier rows to keep, by content hash (the resume index)."""
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
    return keep


class _Plan:
    """Turns the streamed walk into jobs, skipping what is already screened; counts as it goes.

    Paths that cannot be read at all (broken links, loops, folders named like records,
    permission denied) become rows here, without a worker."""

    def __init__(self, keep: dict[str, RecordResult], bid: BundleId, aggregate: str) -> None:
        self.keep, self.bid, self.aggregate = keep, bid, aggregate
        self.queued: set[str] = set()
        self.found = self.resumed = 0
        self.direct: list[RecordResult] = []  # rows made without screening, to write

    def jobs(self, walk) -> Iterator[Job]:
        for f in walk:
            self.found += 1
            key = _path_key(f) if f.reason else content_hash(f.path)
            if key in self.keep or key in self.queued:  # identical content twice in one run is screened once
                self.resumed += 1
                continue
            self.queued.add(key)
            if f.reason:
                self.direct.append(RecordResult(record=f.name, source=str(f.path), content_hash=key, status=NOT_SCREENED,
                                                bundle=self.bid, reason=f.reason, aggregate=self.aggregate))
                continue
            yield Job(f.name, str(f.path), key, f.recognised)


def screen(inputs: Sequence[str | Path], bundle, options: ScreenOptions | None = None,
           runtime=None) -> ScreenSummary:
    """Screen every record under ``inputs`` with ``bundle`` (a ``Bundle`` or its path).

    Writes ``results.csv`` and ``report.html`` (and ``images/``) into ``options.out_dir``.
    ``runtime`` overrides ``open_runtime(bundle, backend, precision, threads)`` and screens in
    this process (for reuse, and for tests that inject a failing runtime).
    """
    from edge_ecg.bundle import Bundle, load_bundle
    from edge_ecg.screen.executors import open_executor
    from edge_ecg.screen.labels import bundle_labels

    opts = options or ScreenOptions()
    t_start, cpu_start = time.perf_counter(), time.process_time()
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    labels = list(bundle.label_names)
    bid = bundle_id(bundle)
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / RESULTS_CSV
    walk = walk_inputs(inputs)  # raises now (a generator would not) when an input does not exist
    if opts.input_list is not None:
        walk = itertools.chain(walk, _list_walk(opts.input_list))
    keep = _previous(csv_path, labels, bid, opts.force)
    if not opts.keep_identifiers:  # a run that keeps none rewrites the file without any kept before
        for r in keep.values():
            r.patient = {}
    plan = _Plan(keep, bid, opts.aggregate)
    wopts = WorkerOptions(str(bundle.root), opts.backend, opts.precision, opts.threads, opts.batch_size,
                          opts.aggregate, opts.images, opts.keep_identifiers)

    writer = ResultsWriter(csv_path, labels, keep.values())
    new: list[RecordResult] = []
    timings = Timings()
    progress = Progress(None) if opts.progress else None

    def emit(rows: list[RecordResult]) -> None:
        new.extend(rows)
        writer.append(rows)
        if progress and rows:
            progress.update(len(rows))

    executor = open_executor(opts, wopts, bundle, bid, runtime)
    try:
        for outcomes, spent in executor.run(plan.jobs(walk), plan):
            for o in outcomes:
                if o.result.bundle.hash != bid.hash:
                    raise InputError(opts.scheduler or "worker", f"a worker screened with bundle {o.result.bundle.name} "
                                     f"{o.result.bundle.version} (sha256 {o.result.bundle.hash[:12]}), not the one given "
                                     f"here ({bid.hash[:12]}): every worker must see the same bundle at {bundle.root}")
                write_png(out, IMAGES_DIR, o)
            timings.add(spent)
            emit([o.result for o in outcomes] + plan.direct)
            plan.direct = []
        emit(plan.direct)
    finally:
        writer.close()
        if progress:
            progress.close()
        executor.close()
    if not plan.found:
        log.warning("no ECG records found under %s", ", ".join(map(str, inputs)))
    n_not = sum(1 for r in new if not r.screened)
    results = sorted(list(keep.values()) + new, key=lambda r: r.record)
    write_results(csv_path, results, labels)
    notice = str(bundle.provenance.get("intended_use", "") or bundle.provenance.get("notice", ""))
    ctx = ReportContext(bundle_name=bid.name, bundle_version=bid.version, bundle_hash=bid.hash,
                        labels=bundle_labels(bundle), aggregate=opts.aggregate, backend=executor.backend,
                        notice=notice, identifiers=opts.keep_identifiers)
    t0 = time.perf_counter()
    report = write_report(out / REPORT_HTML, results, ctx)
    report_s = time.perf_counter() - t0
    elapsed, cpu = time.perf_counter() - t_start, time.process_time() - cpu_start
    return ScreenSummary(results=results, found=plan.found, screened=sum(1 for r in new if r.screened),
                         resumed=plan.resumed, not_screened=n_not, windows=timings.windows,
                         elapsed_s=elapsed, cpu_s=cpu, backend=executor.backend, csv_path=csv_path, report_path=report,
                         timings={"read_s": timings.read_s, "infer_s": timings.infer_s, "image_s": timings.image_s,
                                  "report_s": report_s}, where=executor.where)
