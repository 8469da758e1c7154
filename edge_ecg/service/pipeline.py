"""The bedside pipeline: source -> reader thread -> bounded queue -> DSP -> ring -> windows -> inference -> alarms.

Three threads, so that ingest never waits on inference:

- **reader**: iterates the source (serial cart or replay) and puts blocks on a bounded queue;
- **analysis**: runs the DSP chain on every block, writes the ring buffer (indexed by sample
  index), hands what it saw to the ``ConditionPolicy`` (``service/policy.py``: the rules that turn
  rhythm events, lead-off flags, source state, model results, unavailable bundles and storage
  failures into alarm conditions, on stream time, without threads), and every hop cuts a window
  for each bundle and posts it to that bundle's one-slot mailbox;
- **inference**: takes the newest window of each mailbox, renders and classifies it, and hands
  the probabilities back to the analysis thread (which alone drives the alarm manager's
  conditions, in stream order).

A mailbox holds one window: if the next hop arrives before inference took the last one, the old
window is replaced by the newer (coalesced) and the ``overrun`` technical condition is raised,
so a slow model can never build an unbounded backlog. Memory is fixed by the ring size, queue
bound and bounded histories, so it stays flat over hours.

Stream time (sample index / fs) drives the alarm manager; wall time is used only for liveness
(signal lost, stall detection for the watchdog).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

from edge_ecg.alarms.conditions import model_condition
from edge_ecg.alarms.manager import AlarmEvent, AlarmManager, TriageLimits
from edge_ecg.records import Record
from edge_ecg.service.policy import ConditionPolicy, PolicyTiming
from edge_ecg.stream.block import SampleBlock
from edge_ecg.stream.ring import SampleRing

if TYPE_CHECKING:
    from edge_ecg.service.models import ModelSlot, UnavailableModel
    from edge_ecg.service.storage import StorageHealth

log = logging.getLogger(__name__)

_EOF = object()


@dataclass
class WindowJob:
    slot: "ModelSlot"
    start: int
    stop: int
    window: Record
    purpose: str = "hop"  # hop | triage
    alarm: str | None = None  # triage: the alarm being judged
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class PipelineStats:
    blocks: int = 0
    samples: int = 0
    gap_samples: int = 0
    windows: int = 0
    windows_skipped: int = 0
    coalesced: int = 0
    inference_errors: int = 0
    infer_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=512))
    heart_rate: float | None = None
    started_wall: float = field(default_factory=time.monotonic)

    def summary(self, fs: float | None) -> dict[str, Any]:
        wall = time.monotonic() - self.started_wall
        stream = self.samples / fs if fs else 0.0
        inf = sorted(self.infer_s)
        return {
            "stream_s": round(stream, 2),
            "wall_s": round(wall, 2),
            "realtime_x": round(stream / wall, 2) if wall > 0 else 0.0,
            "blocks": self.blocks,
            "windows": self.windows,
            "windows_skipped": self.windows_skipped,
            "coalesced": self.coalesced,
            "windows_per_s": round(self.windows / wall, 3) if wall > 0 else 0.0,
            "infer_ms_p50": round(1000 * inf[len(inf) // 2], 1) if inf else None,
            "infer_ms_max": round(1000 * inf[-1], 1) if inf else None,
            "gap_samples": self.gap_samples,
            "inference_errors": self.inference_errors,
            "heart_rate": None if self.heart_rate is None else round(float(self.heart_rate), 1),
        }


def make_analyzer(fs: float, leads: tuple[str, ...], dsp_config: dict):
    """The streaming DSP chain for this source's rate and leads (``analyzer_factory`` may return None
    instead, which turns the classical rhythm alarms off: tests of the pipeline's own mechanics)."""
    from edge_ecg.dsp import StreamAnalyzer
    from edge_ecg.dsp.config import AnalyzerConfig

    return StreamAnalyzer(fs, leads, AnalyzerConfig.from_dict(dsp_config or {}))


class Pipeline:
    """Runs a source through DSP, models and the alarm manager until the source ends or ``stop()``."""

    def __init__(
        self,
        source: Iterable[SampleBlock],
        manager: AlarmManager,
        *,
        slots: "list[ModelSlot] | None" = None,
        dsp_config: dict | None = None,
        evidence: Callable[[str, Record | None], dict] | None = None,
        sink: Callable[[AlarmEvent, dict | None], Any] | None = None,
        queue_blocks: int = 256,
        ring_s: float = 60.0,
        signal_lost_s: float = 2.0,
        stall_s: float = 30.0,
        speed: float = 1.0,
        triage_conditions: tuple[str, ...] = TriageLimits.conditions,
        min_window_quality: float | None = None,
        analyzer_factory: Callable[[float, tuple[str, ...], dict], Any] = make_analyzer,
        lossless: bool = False,
        unavailable: "list[UnavailableModel] | None" = None,
        storage: "StorageHealth | None" = None,
    ) -> None:
        self.source = source
        self.manager = manager
        self.slots: list[ModelSlot] = [s for s in (slots or []) if s.cfg.role == "findings"]
        self.triage_slot: ModelSlot | None = next((s for s in (slots or []) if s.cfg.role == "triage"), None)
        self.unavailable: list[UnavailableModel] = list(unavailable or [])
        self.storage = storage
        self.dsp_config = dsp_config or {}
        self.evidence = evidence
        self.sink = sink
        self.ring_s = ring_s
        self.signal_lost_s = signal_lost_s
        self.stall_s = stall_s
        self.speed = speed
        self.triage_conditions = triage_conditions
        self.min_window_quality = min_window_quality
        self.analyzer_factory = analyzer_factory
        self.lossless = lossless  # benchmarks: wait for inference instead of coalescing (never for a live cart)
        self.stats = PipelineStats()
        self.fs: float | None = None
        self.leads: tuple[str, ...] = ()
        self.ring: SampleRing | None = None
        self.analyzer = None
        self.first_block = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_blocks)
        self._stop = threading.Event()
        self._relearn = threading.Event()  # set by an operator's relearn; applied between blocks
        self._mail_lock = threading.Condition()
        self._mailbox: dict[int, WindowJob] = {}
        self._triage_jobs: collections.deque = collections.deque(maxlen=4)
        self._results: queue.Queue = queue.Queue()
        self._next_stop: dict[int, int] = {}
        self._last_block_wall = time.monotonic()
        self._analysis_beat = time.monotonic()
        self._infer_busy_since: float | None = None
        self._t = 0.0
        self._stop_index = 0
        self._stream_ended = False
        self._threads: list[threading.Thread] = []
        self.observers: list[Any] = []  # the bedside display: see add_observer
        self._observer_errors = 0
        self.policy = ConditionPolicy(manager, timing=PolicyTiming(signal_lost_s=signal_lost_s), snapshot=self._snapshot, on_raised=self._maybe_triage)
        for slot in self.slots:
            for _, label, prio in slot.alarm_labels():
                manager.register(model_condition(label, prio, slot.name))

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> "Pipeline":
        # before any sample: a broken bundle and a failing disk are known at once
        self.policy.models_unavailable(self.unavailable, self.manager.now)
        self._check_storage(self.manager.now)
        for name, target in (("reader", self._read), ("analysis", self._analyse), ("inference", self._infer)):
            t = threading.Thread(target=self._guard(target), name=f"edge-ecg-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # surfaced to the daemon, which exits non-zero (systemd restarts)
                log.exception("pipeline thread %s died", threading.current_thread().name)
                self.error = exc
                self._stop.set()
                self.done.set()

        return run

    def stop(self) -> None:
        self._stop.set()
        close = getattr(self.source, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
        with self._mail_lock:
            self._mail_lock.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def join(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, end - time.monotonic()))

    @property
    def stream_t(self) -> float:
        return self._t

    def request_relearn(self) -> dict:
        """Have the analyzer learn the patient's dominant beat anew, before the next block.

        Called from the control thread; the analyzer belongs to the pipeline thread, so the request
        waits for it there (``_on_block``) instead of touching the analyzer from here."""
        if self.analyzer is None:
            # nothing is "now" yet: a relearn kept for later would vouch for a rhythm nobody has seen
            return {"relearn": "nothing to relearn: the stream has not started (its first beats are learned anyway)"}
        self._relearn.set()
        return {"relearn": f"requested at t={self._t:.1f} s; the next beats are learned as this patient's own"}

    # -- health (watchdog) --------------------------------------------------------------
    def healthy(self) -> tuple[bool, str]:
        """Progress check for ``WATCHDOG=1``: analysis loop alive and inference not stuck."""
        now = time.monotonic()
        if self.error is not None:
            return False, f"pipeline thread died: {self.error}"
        if now - self._analysis_beat > self.stall_s:
            return False, f"analysis loop silent for {now - self._analysis_beat:.0f} s"
        busy = self._infer_busy_since
        if busy is not None and now - busy > self.stall_s:
            return False, f"inference stuck on one window for {now - busy:.0f} s"
        return True, "ok"

    def status_line(self) -> str:
        s = self.stats.summary(self.fs)
        hr = s["heart_rate"]
        active = ",".join(self.manager.active()) or "none"
        return f"t={self._t:.0f}s HR={hr if hr is not None else '--'} windows={s['windows']} coalesced={s['coalesced']} audio={self.manager.audio()} alarms={active}"

    # -- observers (the bedside display), kept apart from the alarm path ------------------
    def add_observer(self, observer: Any) -> None:
        """Something beside the alarm path that wants every block and findings result.

        ``observer.on_block(block, update)`` runs on the analysis thread after the alarm manager
        has seen the block; ``observer.on_findings(bundle, labels, probs, smoothed, thresholds,
        priorities, window)`` after a findings window. Both must return at once (append to a
        bounded queue); an exception is logged (rate-limited) and swallowed, never propagated.
        """
        self.observers.append(observer)

    def _notify(self, method: str, *args: Any) -> None:
        for obs in self.observers:
            fn = getattr(obs, method, None)
            if fn is None:
                continue
            try:
                fn(*args)
            except Exception:
                self._observer_errors += 1
                if self._observer_errors in (1, 10) or self._observer_errors % 1000 == 0:
                    log.exception("pipeline observer %s.%s failed (%d times)", type(obs).__name__, method, self._observer_errors)

    # -- reader thread ------------------------------------------------------------------
    def _read(self) -> None:
        try:
            for block in self.source:
                while not self._stop.is_set():
                    try:
                        self._queue.put(block, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    break
        finally:
            while True:
                try:
                    self._queue.put(_EOF, timeout=0.2)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    # -- analysis thread ----------------------------------------------------------------
    def _analyse(self) -> None:
        try:
            while not self._stop.is_set():
                self._analysis_beat = time.monotonic()
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    self._idle()
                    self._drain_results()
                    self._check_storage(self._t)
                    continue
                if item is _EOF:
                    self._stream_ended = True
                    break
                self._on_block(item)
                self._drain_results()
                self._check_storage(self._t)
            # let the last windows finish so a replay's final findings are logged
            end = time.monotonic() + 30
            while (self._mailbox or self._triage_jobs or self._infer_busy_since is not None) and time.monotonic() < end and not self._stop.is_set():
                self._analysis_beat = time.monotonic()
                time.sleep(0.02)
                self._drain_results()
            self._drain_results()
        finally:
            self.done.set()
            with self._mail_lock:
                self._mail_lock.notify_all()

    def _on_block(self, block: SampleBlock) -> None:
        if self.fs is None:
            self._init_stream(block)
        elif block.leads != self.leads or block.fs != self.fs:
            log.error("source changed leads/rate mid-stream (%s @ %s Hz); block skipped", block.leads, block.fs)
            return
        st = self.stats
        st.blocks += 1
        st.samples += block.n
        st.gap_samples += block.gap_before
        if block.gap_reason and block.gap_reason not in ("missing", "queue_overrun", "restart"):
            log.warning("stream: %s at index %d (gap %d samples)", block.gap_reason, block.start, block.gap_before)
        self._last_block_wall = time.monotonic()
        self.ring.write(block)
        self._stop_index = block.stop
        self._t = block.stop / self.fs
        update = None
        if self._relearn.is_set() and self.analyzer is not None:
            self._relearn.clear()
            try:
                forgot = self.analyzer.relearn()
                log.warning("rhythm relearned at t=%.1f s on the operator's request (%s)", self._t, forgot)
            except Exception:  # an operator action must never stop the classical path
                log.exception("relearn failed at t=%.1f s; analysis goes on with the template it had", self._t)
        if self.analyzer is not None:
            update = self.analyzer.process(block)
            if update.heart_rate is not None or update.events:
                st.heart_rate = update.heart_rate
        self.policy.block(block, update, self._t)
        try:
            self._hops(self._t)
        except Exception as exc:  # the models are downstream of the classical alarms: never let them stop it
            self._model_fault("cutting windows", exc)
        if self.observers:
            self._notify("on_block", block, update)

    def _init_stream(self, block: SampleBlock) -> None:
        self.fs, self.leads = float(block.fs), tuple(block.leads)
        usable = []
        for slot in self.slots + ([self.triage_slot] if self.triage_slot else []):
            reason = slot.lead_problem(self.leads)
            if reason is not None:  # that model cannot run on this source; the others and the DSP can
                from edge_ecg.service.models import UnavailableModel

                log.error("bundle %s disabled: %s", slot.name, reason)
                self.unavailable.append(UnavailableModel(str(slot.cfg.path), slot.cfg.role, reason))
                continue
            usable.append(slot)
        self.slots = [s for s in usable if s.cfg.role == "findings"]
        self.triage_slot = next((s for s in usable if s.cfg.role == "triage"), None)
        longest = max([s.window_s for s in usable] + [10.0])
        self.ring = SampleRing(int(max(self.ring_s, longest + 4) * self.fs), len(self.leads))
        self.analyzer = self.analyzer_factory(self.fs, self.leads, self.dsp_config)
        for slot in self.slots:
            self._next_stop[id(slot)] = int(round(slot.window_s * self.fs))
        t0 = block.start / self.fs
        self.policy.start_stream(self.fs, self.leads, t0, None if self.analyzer is None else self.analyzer.window_quality)
        self.policy.models_unavailable(self.unavailable, t0)
        self.first_block.set()
        log.info("stream: %d leads (%s) at %g Hz", len(self.leads), ", ".join(self.leads), self.fs)

    def _snapshot(self, name: str, window: Record | None) -> Mapping[str, Any]:
        """Evidence for a raised alarm: the window it rests on (default: the last 10 s of the ring)."""
        if self.evidence is None:
            return {}
        if window is None and self.ring is not None:
            a = max(0, self._stop_index - int(10 * self.fs))
            data, _ = self.ring.read(a, self._stop_index)
            window = Record(signals=data, fs=self.fs, leads=self.leads, name=f"{name}@{self._t:.1f}s")
        return self.evidence(name, window) or {}

    def _maybe_triage(self, name: str) -> None:
        if name in self.triage_conditions and self.triage_slot is not None:
            self._submit_triage(name)

    def _idle(self) -> None:
        quiet = time.monotonic() - self._last_block_wall
        self.policy.idle(self._t, quiet, getattr(self.source, "state", None), self._stream_ended, self.speed)

    def _check_storage(self, t: float) -> None:
        if self.storage is not None:
            self.policy.storage(self.storage.failure(), t)

    # -- windows ------------------------------------------------------------------------
    def _hops(self, t: float) -> None:
        for slot in self.slots:
            key = id(slot)
            win = int(round(slot.window_s * self.fs))
            hop = max(1, int(round(slot.hop_s * self.fs)))
            nxt = self._next_stop[key]
            if self._stop_index < nxt:
                continue
            # several hops due at once (a burst after a gap or stall): only the newest window is cut;
            # the skipped ones are counted, not queued
            k = (self._stop_index - nxt) // hop
            stop = nxt + k * hop
            self.stats.windows_skipped += k
            self._next_stop[key] = stop + hop
            self._submit(slot, stop - win, stop)

    def _window(self, start: int, stop: int, name: str) -> Record | None:
        data, off = self.ring.read(start, stop)
        if np.isnan(data).mean() > 0.2 or off.all(axis=0).all():
            return None
        if np.isnan(data).any():
            data = np.nan_to_num(data, nan=0.0)
        return Record(signals=data, fs=self.fs, leads=self.leads, name=name)

    def _quality_ok(self, start: int, stop: int) -> tuple[bool, dict]:
        if self.analyzer is None:
            return True, {}
        q = self.analyzer.window_quality(start, stop)
        ok = q.usable if self.min_window_quality is None else q.score >= self.min_window_quality
        return bool(ok), {"score": round(float(q.score), 3), "notes": list(q.notes)}

    def _submit(self, slot, start: int, stop: int) -> None:
        ok, quality = self._quality_ok(start, stop)
        window = self._window(start, stop, f"{slot.name}@{stop / self.fs:.1f}s") if ok else None
        if window is None:
            self.stats.windows_skipped += 1
            return
        job = WindowJob(slot, start, stop, window)
        with self._mail_lock:
            while self.lossless and id(slot) in self._mailbox and not self._stop.is_set():
                self._analysis_beat = time.monotonic()
                self._mail_lock.wait(0.05)
            replaced = self._mailbox.get(id(slot))
            self._mailbox[id(slot)] = job
            self._mail_lock.notify_all()
        if replaced is not None:
            self.stats.coalesced += 1
        self.policy.window_posted(slot.name, stop / self.fs, None if replaced is None else replaced.stop / self.fs)

    def _submit_triage(self, alarm: str) -> None:
        slot = self.triage_slot
        win = int(round(slot.window_s * self.fs))
        window = self._window(self._stop_index - win, self._stop_index, f"triage-{alarm}@{self._t:.1f}s")
        if window is None:
            self.manager.triage(alarm, self._t, False, {"bundle": slot.name, "decision_note": "window unusable; not judged"})
            return
        with self._mail_lock:
            self._triage_jobs.append(WindowJob(slot, self._stop_index - win, self._stop_index, window, "triage", alarm))
            self._mail_lock.notify_all()

    # -- inference thread ---------------------------------------------------------------
    def _infer(self) -> None:
        while True:
            with self._mail_lock:
                while not self._mailbox and not self._triage_jobs:
                    if self._stop.is_set() or self.done.is_set():
                        return
                    self._mail_lock.wait(0.2)
                if self._triage_jobs:
                    job = self._triage_jobs.popleft()
                else:
                    key = next(iter(self._mailbox))
                    job = self._mailbox.pop(key)
                self._infer_busy_since = time.monotonic()
                self._mail_lock.notify_all()
            try:
                t0 = time.monotonic()
                probs = job.slot.classifier.predict([job.window])[0]
                self._results.put((job, probs, time.monotonic() - t0, None))
            except Exception as exc:  # a failing runtime is a technical alarm, not a dead daemon
                self._results.put((job, None, 0.0, exc))
            finally:
                self._infer_busy_since = None

    def _drain_results(self) -> None:
        while True:
            try:
                job, probs, dt_s, exc = self._results.get_nowait()
            except queue.Empty:
                return
            t = max(self._t, job.stop / self.fs)
            if exc is not None:
                self.stats.inference_errors += 1
                log.error("inference on %s failed: %s", job.slot.name, exc)
            self.policy.inference(job.slot.name, t, exc)
            if exc is not None:
                continue
            self.stats.infer_s.append(dt_s)
            try:
                if job.purpose == "triage":
                    self._triage_result(job, probs, t)
                    continue
                self.stats.windows += 1
                smoothed = self.policy.findings(job.slot, probs, t, (job.start / self.fs, job.stop / self.fs), job.window)
                job.slot.note_findings(smoothed, probs, t, (job.start / self.fs, job.stop / self.fs))  # finding-only labels: event log
            except Exception as exc:  # a model result that cannot be used is that model's fault, not the monitor's
                self._model_fault(f"using the result of {job.slot.name}", exc)
                continue
            if self.observers:
                self._notify("on_findings", job.slot.name, job.slot.labels, probs, smoothed, job.slot.thresholds, job.slot.priorities,
                             [round(job.start / self.fs, 2), round(job.stop / self.fs, 2)])

    def _model_fault(self, what: str, exc: Exception) -> None:
        self.stats.inference_errors += 1
        log.exception("model path failed while %s; classical monitoring continues", what)
        self.policy.inference(what, self._t, exc)

    def _triage_result(self, job: WindowJob, probs: np.ndarray, t: float) -> None:
        slot = job.slot
        i = slot.triage_index
        p_true = float(probs[i])
        judged_false = p_true < float(slot.thresholds[i])
        ev = {"bundle": slot.name, "version": slot.bundle.version, "label": slot.labels[i], "p_true": round(p_true, 4), "threshold": float(slot.thresholds[i]), "window": [round(job.start / self.fs, 2), round(job.stop / self.fs, 2)]}
        self.manager.triage(job.alarm, t, judged_false, ev)
