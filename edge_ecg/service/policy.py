"""The condition policy: what the pipeline sees (blocks, DSP updates, quiet links, windows, model
results, broken bundles, a failing disk) turned into alarm conditions, on stream time.

Why a class of its own: these rules decide what a nurse hears, and they were tangled with the
pipeline's threads and mailboxes. Here they are a plain object driven by stream time, like
``AlarmManager``, so a test feeds it values and reads the manager's events back, with no thread,
pty or runtime. ``Pipeline`` keeps the threads and calls these methods from its analysis thread
only. Condition names come from ``edge_ecg.alarms.conditions``; rhythm conditions are handled
generically from ``RHYTHM_CONDITIONS`` (a new rhythm there is reconciled like the others).

Rules:
- **leads off** follows the cart's per-lead flags block by block; **signal lost** is raised when
  the link is quiet for ``signal_lost_s`` (wall time) or the source reports lost/stalled, and
  cleared by the next block (with the gap and its reason);
- **rhythm**: an onset raises (even if its offset arrives in the same block: the alarm latches);
  afterwards the alarm manager's state is reconciled with the analyzer's set of active rhythms.
  While the electrodes of every analysed lead are off a rhythm alarm is withheld (and the
  withholding logged once): a flat line with the electrodes off is not asystole;
- **noise** every 2 s of stream over the last 4 s: no lead both usable and noise-free, at least
  one flagged noisy, and no electrode off (leads off is its own condition);
- **overrun** when a window was coalesced away, cleared after 3 clean hops;
- **inference failure** on a runtime error, cleared by the next success;
- **model findings** (``model:<label>``) from each slot's smoothed probabilities and thresholds,
  for the labels the slot lets alarm (``ModelSlot.alarm_labels``);
- **model unavailable** while any configured bundle could not be loaded or verified (named with
  its reason); the classical conditions above never depend on it;
- **storage failed** while the state disk refuses writes (ENOSPC, EIO, ...), from a
  ``StorageHealth`` the writers report into;
- after a **restart**, alarms restored as active that the policy does not see again within
  ``restore_confirm_s`` of stream are ended (a latching one latches: it still needs an
  acknowledgement).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from edge_ecg.alarms.conditions import (
    INFERENCE_FAILURE,
    LEADS_OFF,
    MODEL_PREFIX,
    MODEL_UNAVAILABLE,
    NOISE,
    OVERRUN,
    RHYTHM_CONDITIONS,
    SIGNAL_LOST,
    STORAGE_FAILED,
)
from edge_ecg.alarms.manager import AlarmManager
from edge_ecg.stream.block import SampleBlock, SourceState

if TYPE_CHECKING:
    from edge_ecg.dsp.types import AnalysisUpdate, WindowQuality
    from edge_ecg.records import Record
    from edge_ecg.service.models import ModelSlot, UnavailableModel

log = logging.getLogger(__name__)

RHYTHM_NAMES = tuple(c.name for c in RHYTHM_CONDITIONS)


@dataclass(frozen=True)
class PolicyTiming:
    """Stream-time constants of the policy (seconds)."""

    noise_every_s: float = 2.0
    noise_span_s: float = 4.0
    overrun_clear_hops: int = 3
    restore_confirm_s: float = 10.0
    signal_lost_s: float = 2.0  # wall time without samples (the link, not the patient)


class ConditionPolicy:
    """Conditions from what the pipeline sees; every method takes stream time ``t`` and returns nothing.

    ``snapshot(name, window)`` (optional) adds evidence to a raised alarm (the daemon renders an
    evidence PNG; ``window`` None = the last seconds of signal); ``on_raised(name)`` hears every
    physiological raise (the pipeline submits a triage window there); ``quality(start, stop)``
    is the analyzer's window quality (None: no DSP, no noise condition).
    """

    def __init__(
        self,
        manager: AlarmManager,
        *,
        timing: PolicyTiming | None = None,
        snapshot: Callable[[str, "Record | None"], Mapping[str, Any]] | None = None,
        on_raised: Callable[[str], None] | None = None,
    ) -> None:
        self.manager = manager
        self.timing = timing or PolicyTiming()
        self.snapshot = snapshot
        self.on_raised = on_raised
        self.quality: Callable[[int, int], "WindowQuality"] | None = None
        self.fs: float | None = None
        self.leads: tuple[str, ...] = ()
        self._lead_off_now = np.zeros(0, dtype=bool)
        self._rhythm_evidence: dict[str, dict] = {}
        self._withheld_now: set[str] = set()
        self._clean_hops = 0
        self._next_noise = 0
        self._stop_index = 0
        self._unconfirmed: set[str] = set()
        self._confirm_at: float | None = None
        self._unavailable: tuple[str, ...] = ()

    # -- helpers ------------------------------------------------------------------------
    def _active(self, name: str) -> bool:
        return name in self.manager.active()

    def _set(self, name: str, on: bool, t: float, evidence: Mapping[str, Any] | None = None) -> None:
        self._unconfirmed.discard(name)
        self.manager.set_condition(name, on, t, evidence)

    # -- stream -------------------------------------------------------------------------
    def start_stream(self, fs: float, leads: Sequence[str], t: float, quality: Callable[[int, int], "WindowQuality"] | None) -> None:
        """The first block: stream time starts at ``t``; restored alarms get ``restore_confirm_s`` to be seen again."""
        self.fs, self.leads, self.quality = float(fs), tuple(leads), quality
        self.manager.start_stream(t)
        self._unconfirmed = set(n for n in self.manager.restored() if self._active(n))
        self._confirm_at = t + self.timing.restore_confirm_s if self._unconfirmed else None

    def block(self, block: SampleBlock, update: "AnalysisUpdate | None", t: float) -> None:
        """One block analysed: signal back, leads off, rhythm, noise, then the manager's clock."""
        self._stop_index = block.stop
        if self._active(SIGNAL_LOST.name):
            ev: dict[str, Any] = {"gap_samples": block.gap_before}
            if block.gap_reason:
                ev["gap_reason"] = block.gap_reason
            self._set(SIGNAL_LOST.name, False, t, ev)
        off = block.lead_off_any()
        self._lead_off_now = off
        if off.any():
            self._set(LEADS_OFF.name, True, t, {"leads": [l for l, o in zip(self.leads, off) if o]})
        elif self._active(LEADS_OFF.name) or LEADS_OFF.name in self._unconfirmed:
            self._set(LEADS_OFF.name, False, t)
        if update is not None:
            self._rhythm(update, t)
        self._noise(t)
        self._confirm_restored(t)
        self.manager.advance(t)

    def idle(self, t: float, quiet_s: float, source_state: SourceState | None, stream_ended: bool, speed: float) -> None:
        """No block for ``quiet_s`` seconds of wall time: signal lost, and let an audio pause expire."""
        if self.fs is None:
            return
        lost = quiet_s >= self.timing.signal_lost_s or source_state in (SourceState.LOST, SourceState.STALLED)
        if lost and not stream_ended and not self._active(SIGNAL_LOST.name):
            self._set(SIGNAL_LOST.name, True, t, {"quiet_s": round(quiet_s, 2), "source_state": getattr(source_state, "value", str(source_state))})
        # stream time stands still without samples; let audio pauses expire on the wall clock
        if quiet_s > 0.5 and speed > 0:
            self.manager.advance(t + quiet_s * speed)

    # -- rhythm -------------------------------------------------------------------------
    def _rhythm(self, update: "AnalysisUpdate", t: float) -> None:
        """Rhythm events in order (an onset and its offset may arrive in one block: the alarm is
        still raised, then latches), then reconcile with the analyzer's set of active conditions."""
        all_off = self._lead_off_now.size > 0 and bool(self._lead_off_now.all())
        for ev in update.events:
            kind = ev.kind
            if kind not in RHYTHM_NAMES:
                continue
            if ev.state == "onset":
                self._rhythm_evidence[kind] = {"onset_index": ev.index, "onset_t": round(ev.index / self.fs, 3), **dict(ev.evidence)}
                self._want_on(kind, t, update, all_off)
            elif self._active(kind):
                self._set(kind, False, t, {"offset_t": round(ev.index / self.fs, 3)})
                self._withheld_now.discard(kind)
        active = set(update.active or ())
        for kind in RHYTHM_NAMES:
            if kind in active:
                self._want_on(kind, t, update, all_off)
            else:
                self._withheld_now.discard(kind)
                if self._active(kind) and not any(e.kind == kind for e in update.events):
                    self._set(kind, False, t)

    def _want_on(self, kind: str, t: float, update: "AnalysisUpdate", all_off: bool) -> None:
        if all_off:
            # every analysed lead is off: a flat line is not asystole; withhold, and say so once
            if kind not in self._withheld_now:
                self._withheld_now.add(kind)
                self.manager.withheld(kind, t, "electrodes off on every lead", {"leads_off": list(self.leads)})
            if self._active(kind):
                self._set(kind, False, t, {"reason": "electrodes off"})
            return
        if self._active(kind):
            self._set(kind, True, t)  # seen: confirms a restored alarm; no event
            return
        ev = dict(self._rhythm_evidence.get(kind, {}))
        ev["detected_t"] = round(t, 3)
        if "onset_t" in ev:
            ev["latency_s"] = round(t - ev["onset_t"], 3)
        if update.heart_rate is not None:
            ev["heart_rate"] = round(float(update.heart_rate), 1)
        self._raise(kind, t, ev, None)

    def _raise(self, name: str, t: float, evidence: dict, window: "Record | None") -> None:
        if self.snapshot is not None:
            evidence = {**evidence, **dict(self.snapshot(name, window))}
        self._set(name, True, t, evidence)
        if self.on_raised is not None and self.manager.state(name) is not None:
            self.on_raised(name)

    # -- noise --------------------------------------------------------------------------
    def _noise(self, t: float) -> None:
        """Every 2 s of stream: ``noise`` from the last 4 s of signal quality.

        Noise means no lead is left that is both usable and free of noise, and at least one is
        flagged noisy; leads off and flat lines are their own conditions (a flat trace with
        electrodes on may be asystole), not noise.
        """
        if self.quality is None or self.fs is None or self._stop_index < self._next_noise:
            return
        step = int(self.timing.noise_every_s * self.fs)
        self._next_noise = self._stop_index + step
        q = self.quality(max(0, self._stop_index - int(self.timing.noise_span_s * self.fs)), self._stop_index)
        leads = q.leads
        noisy = (
            bool(leads)
            and all(l.noisy or not l.usable for l in leads)
            and any(l.noisy for l in leads)
            and not (self._lead_off_now.size and self._lead_off_now.any())
        )
        if noisy != self._active(NOISE.name) or NOISE.name in self._unconfirmed:
            self._set(NOISE.name, noisy, t, {"score": round(float(q.score), 3), "notes": list(q.notes)})

    # -- models -------------------------------------------------------------------------
    def window_posted(self, bundle: str, t: float, replaced_stop_t: float | None) -> None:
        """A window went to a model's mailbox; ``replaced_stop_t`` = the older one it displaced."""
        if replaced_stop_t is not None:
            self._clean_hops = 0
            if not self._active(OVERRUN.name):
                self._set(OVERRUN.name, True, t, {"bundle": bundle, "dropped_window_stop_t": round(replaced_stop_t, 2),
                                                  "reason": "inference slower than the hop; coalesced to the newest window"})
            return
        self._clean_hops += 1
        if self._clean_hops >= self.timing.overrun_clear_hops and (self._active(OVERRUN.name) or OVERRUN.name in self._unconfirmed):
            self._set(OVERRUN.name, False, t)

    def inference(self, bundle: str, t: float, error: BaseException | None) -> None:
        """A model call finished: failed (``error``) or succeeded."""
        if error is not None:
            if not self._active(INFERENCE_FAILURE.name):
                self._set(INFERENCE_FAILURE.name, True, t, {"bundle": bundle, "reason": f"{type(error).__name__}: {error}"})
        elif self._active(INFERENCE_FAILURE.name) or INFERENCE_FAILURE.name in self._unconfirmed:
            self._set(INFERENCE_FAILURE.name, False, t, {"bundle": bundle})

    def findings(self, slot: "ModelSlot", probs: np.ndarray, t: float, window_s: tuple[float, float], window: "Record | None") -> np.ndarray:
        """A findings model's probabilities for one window: ``model:<label>`` on or off per label.
        Returns the smoothed probabilities (what the thresholds were applied to)."""
        smoothed = slot.smooth(probs)
        for i, label, _priority in slot.alarm_labels():
            name = MODEL_PREFIX + label
            on = bool(smoothed[i] >= slot.thresholds[i])
            if on and not self._active(name):
                ev = {"bundle": slot.name, "version": slot.bundle.version, "p": round(float(smoothed[i]), 4), "p_window": round(float(probs[i]), 4),
                      "threshold": float(slot.thresholds[i]), "window": [round(window_s[0], 2), round(window_s[1], 2)]}
                self._raise(name, t, ev, window)
            elif on:
                self._set(name, True, t)
            elif self._active(name) or name in self._unconfirmed:
                self._set(name, False, t, {"p": round(float(smoothed[i]), 4)})
        return smoothed

    def models_unavailable(self, missing: Iterable["UnavailableModel"], t: float) -> None:
        """The bundles that could not be loaded or verified (empty: all there)."""
        missing = list(missing)
        names = tuple(sorted(m.name for m in missing))
        if names == self._unavailable and (bool(names) == self._active(MODEL_UNAVAILABLE.name)) and MODEL_UNAVAILABLE.name not in self._unconfirmed:
            return
        self._unavailable = names
        if missing:
            ev = {"bundles": [m.to_dict() for m in missing], "reason": "; ".join(f"{m.name}: {m.reason}" for m in missing),
                  "note": "those models are off; classical monitoring runs"}
            if self._active(MODEL_UNAVAILABLE.name):
                self.manager.set_condition(MODEL_UNAVAILABLE.name, False, t, {"reason": "superseded"})
            self._set(MODEL_UNAVAILABLE.name, True, t, ev)
        elif self._active(MODEL_UNAVAILABLE.name):
            self._set(MODEL_UNAVAILABLE.name, False, t)
        else:
            self._unconfirmed.discard(MODEL_UNAVAILABLE.name)

    # -- storage ------------------------------------------------------------------------
    def storage(self, failure: Mapping[str, Any] | None, t: float) -> None:
        """The state disk: ``failure`` describes the last refused write (None: writes succeed)."""
        if failure:
            if not self._active(STORAGE_FAILED.name):
                self._set(STORAGE_FAILED.name, True, t, dict(failure))
            else:
                self._unconfirmed.discard(STORAGE_FAILED.name)
        elif self._active(STORAGE_FAILED.name):
            self._set(STORAGE_FAILED.name, False, t, {"reason": "writes succeed again"})

    # -- restart ------------------------------------------------------------------------
    def _confirm_restored(self, t: float) -> None:
        if self._confirm_at is None or t < self._confirm_at:
            return
        for name in sorted(self._unconfirmed):
            if self._active(name):
                self.manager.set_condition(name, False, t, {"reason": f"not present within {self.timing.restore_confirm_s:g} s after the restart"})
        self._unconfirmed.clear()
        self._confirm_at = None
