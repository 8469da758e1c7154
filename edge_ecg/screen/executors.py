"""Where records are screened: this process, local worker processes, or a Dask cluster.

Each executor takes the stream of jobs and yields (outcomes, timings) as chunks finish. Jobs are
pulled from the stream only as workers free up (at most two chunks in flight per worker), so the
walk of an archive never runs ahead of the screening into memory.

- ``InProcess``: one ``Screener`` here; batches fill across records (the classic path, and the
  only one that accepts an injected runtime).
- ``LocalProcesses``: ``workers`` processes, each with its own runtime of one inference thread
  (ONNX Runtime's own thread pool would fight the other processes for the cores); a worker that
  dies (a crash in a reader or the runtime) is replaced and its chunk retried once, then its
  records are listed as not screened with the reason.
- ``DaskCluster``: ``dask.distributed`` on an existing scheduler (``--scheduler tcp://host:8786``).
  Every worker must see the input files and the bundle at the same paths. Dask itself moves the
  tasks of a worker that dies to the others; results come back here, so resuming is the same
  content-hash index as everywhere else. ``distributed`` is an optional extra, imported only here.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import multiprocessing
import os
from typing import Iterator

from edge_ecg.errors import InputError
from edge_ecg.screen.results import NOT_SCREENED, BundleId, RecordResult
from edge_ecg.screen.worker import Job, Outcome, Screener, Timings, WorkerOptions, screen_chunk

log = logging.getLogger(__name__)

WORKER_DIED = "worker process died while screening this record (a crash in a reader or the runtime)"


def _chunks(jobs: Iterator[Job], size: int) -> Iterator[list[Job]]:
    while True:
        chunk = list(itertools.islice(jobs, size))
        if not chunk:
            return
        yield chunk


class InProcess:
    """Screens in this process with one runtime (``runtime`` given, or opened here)."""

    def __init__(self, wopts: WorkerOptions, bundle, bid: BundleId, runtime=None) -> None:
        self.wopts, self.bundle, self.bid = wopts, bundle, bid
        self._runtime, self._own = runtime, runtime is None
        self._screener: Screener | None = None
        self.backend = runtime.describe() if runtime is not None else "-"
        self.where = "this process"

    def _get(self) -> Screener:
        if self._screener is None:
            if self._runtime is None:
                from edge_ecg.runtimes import open_runtime

                self._runtime = open_runtime(self.bundle, backend=self.wopts.backend, precision=self.wopts.precision,
                                             threads=self.wopts.threads)
            self.backend = self._runtime.describe()
            self._screener = Screener(self.bundle, self._runtime, self.wopts, self.bid)
        return self._screener

    def run(self, jobs: Iterator[Job], plan=None) -> Iterator[tuple[list[Outcome], Timings]]:
        for job in jobs:
            s = self._get()
            before = _copy(s.timings)
            done = s.add(job)
            yield done, _minus(s.timings, before)
        if self._screener is not None:
            before = _copy(self._screener.timings)
            done = self._screener.flush()
            yield done, _minus(self._screener.timings, before)

    def close(self) -> None:
        if self._own and self._runtime is not None:
            self._runtime.close()


def _copy(t: Timings) -> Timings:
    return Timings(t.read_s, t.infer_s, t.image_s, t.windows)


def _minus(a: Timings, b: Timings) -> Timings:
    return Timings(a.read_s - b.read_s, a.infer_s - b.infer_s, a.image_s - b.image_s, a.windows - b.windows)


def _die_with_parent(parent: int) -> None:
    """A worker ends when the screening process ends, however it ends (SIGKILL, power loss of the
    session): Linux's parent-death signal. Without it a forked worker would wait forever on a
    queue whose other end it inherited, holding the terminal's pipes open."""
    import signal

    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown is all there is
        return
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _died(chunk: list[Job], bid: BundleId, aggregate: str) -> list[Outcome]:
    return [Outcome(RecordResult(record=j.name, source=j.path, content_hash=j.key, status=NOT_SCREENED, bundle=bid,
                                 reason=WORKER_DIED, aggregate=aggregate)) for j in chunk]


class LocalProcesses:
    """``workers`` local processes, one inference thread each."""

    def __init__(self, wopts: WorkerOptions, workers: int, chunk_size: int, bundle, bid: BundleId) -> None:
        self.full_wopts = wopts
        self.wopts = WorkerOptions(**{**wopts.__dict__, "threads": wopts.threads or 1})
        self.workers, self.chunk_size, self.bundle, self.bid = workers, chunk_size, bundle, bid
        self._small: InProcess | None = None
        # fork: the workers start with this process's imports and need no second start-up; this
        # process never opens a runtime in this mode, so no runtime threads are forked
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._ctx = multiprocessing.get_context(method)
        self._pool: cf.ProcessPoolExecutor | None = None
        self.backend = "-"
        self.where = f"{workers} local worker processes, 1 inference thread each"

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx, initializer=_die_with_parent,
                                      initargs=(os.getpid(),))

    def run(self, jobs: Iterator[Job], plan=None) -> Iterator[tuple[list[Outcome], Timings]]:
        # a handful of records is screened here: starting processes would cost more than it saves
        head = list(itertools.islice(jobs, self.workers * self.chunk_size))
        if len(head) < self.workers * self.chunk_size:
            self._small = InProcess(self.full_wopts, self.bundle, self.bid)
            yield from self._small.run(iter(head))
            self.backend, self.where = self._small.backend, self._small.where
            return
        self._pool = self._new_pool()
        chunks = _chunks(itertools.chain(head, jobs), self.chunk_size)
        inflight: dict[cf.Future, tuple[list[Job], int]] = {}
        limit = 2 * self.workers
        exhausted = False
        while True:
            while not exhausted and len(inflight) < limit:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                inflight[self._pool.submit(screen_chunk, chunk, self.wopts)] = (chunk, 0)
            if not inflight:
                return
            done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
            broken = []
            for fut in done:
                chunk, tries = inflight.pop(fut)
                try:
                    outcomes, spent, backend = fut.result()
                except cf.process.BrokenProcessPool:
                    broken.append((chunk, tries))
                    continue
                self.backend = backend
                yield outcomes, spent
            if broken:  # every pending chunk of the broken pool is lost too: start a new pool, retry once
                broken += list(inflight.values())
                inflight.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool()
                log.warning("a screening worker process died; %d chunk(s) retried in a new pool", len(broken))
                for chunk, tries in broken:
                    if tries >= 1:
                        yield _died(chunk, self.bid, self.wopts.aggregate), Timings()
                    else:
                        inflight[self._pool.submit(screen_chunk, chunk, self.wopts)] = (chunk, tries + 1)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        if self._small is not None:
            self._small.close()


class DaskCluster:
    """Chunks as tasks on a Dask distributed scheduler."""

    def __init__(self, wopts: WorkerOptions, address: str, chunk_size: int, bid: BundleId) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise InputError("--scheduler", "needs Dask distributed: pip install 'edge-ecg[distributed]'") from exc
        self.wopts = WorkerOptions(**{**wopts.__dict__, "threads": wopts.threads or 1})
        self.chunk_size, self.bid = chunk_size, bid
        try:
            self.client = Client(address, timeout="20s")
        except Exception as exc:  # OSError/TimeoutError: say which address did not answer
            raise InputError("--scheduler", f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        n = max(1, sum(w.get("nthreads", 1) for w in self.client.scheduler_info().get("workers", {}).values()))
        self.slots = n
        self.backend = "-"
        self.where = f"Dask cluster at {address} ({n} worker thread(s))"

    def run(self, jobs: Iterator[Job], plan=None) -> Iterator[tuple[list[Outcome], Timings]]:
        from distributed import as_completed

        chunks = _chunks(jobs, self.chunk_size)
        chunk_of: dict[str, list[Job]] = {}

        def submit(chunk: list[Job]):
            fut = self.client.submit(screen_chunk, chunk, self.wopts, pure=False)
            chunk_of[fut.key] = chunk
            return fut

        first = [submit(c) for c in itertools.islice(chunks, 2 * self.slots)]
        if not first:
            return
        pending = as_completed(first)
        for fut in pending:
            chunk = chunk_of.pop(fut.key)
            try:
                outcomes, spent, backend = fut.result()
                self.backend = backend
            except Exception as exc:  # the task failed on every worker Dask tried (its allowed-failures)
                log.warning("a screening task failed on the cluster: %s", exc)
                outcomes, spent = _died(chunk, self.bid, self.wopts.aggregate), Timings()
            fut.release()
            yield outcomes, spent
            nxt = next(chunks, None)
            if nxt is not None:
                pending.add(submit(nxt))

    def close(self) -> None:
        self.client.close()


def open_executor(opts, wopts: WorkerOptions, bundle, bid: BundleId, runtime=None):
    """The executor ``opts`` asks for: a Dask cluster, local processes, or this process."""
    if runtime is not None:
        return InProcess(wopts, bundle, bid, runtime)
    if opts.scheduler:
        return DaskCluster(wopts, opts.scheduler, opts.chunk_size, bid)
    if opts.workers > 1:
        return LocalProcesses(wopts, opts.workers, opts.chunk_size, bundle, bid)
    return InProcess(wopts, bundle, bid)


def default_workers() -> int:
    """All local cores (the cores this process may run on)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)
