"""The alarm manager's audio state made audible: IEC 60601-1-8 bursts on the speaker.

The manager already decides *whether* and *at which priority* audio sounds (``sounding-high``,
``paused``, ``off``; every change is an event), so the sounder only follows that state: it is an
event listener that records the newest state and wakes its own thread, which plays the burst of
the sounding priority (repeated at the burst's interburst interval; low priority once), and stops
the running burst at once when the state becomes ``paused`` or ``off`` (audio pause, acknowledge)
or switches priority. Nothing here runs on the pipeline's threads, and nothing waits on the
speaker: each burst is one ``aplay`` process (``edge_ecg.sound.player``).

A device that cannot play (no sound card, wrong device name, ``aplay`` missing) is the technical
condition ``audio_failure``, raised with ``aplay``'s reason and cleared by the next burst or probe
that plays; the daemon goes on. While nothing sounds, a 20 ms silent probe every ``probe_s``
checks the device, so a dead speaker is on the screen before an alarm needs it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edge_ecg.config_table import NOT_CONFIG, bounds
from edge_ecg.sound.player import AplayPlayer, Playback
from edge_ecg.sound.tones import BURSTS, RATE, burst, write_wav

log = logging.getLogger(__name__)

CONDITION = "audio_failure"


@dataclass(frozen=True)
class SoundConfig:
    """``[audio]`` of the daemon config."""

    enabled: bool = False
    device: str = "default"  # ALSA PCM: default, plughw:CARD=...,DEV=0, hw:0,0, ...
    level_dbfs: float = field(default=-6.0, metadata=bounds(minimum=-40.0, maximum=0.0))  # burst peak; speaker volume: alsamixer
    probe_s: float = field(default=60.0, metadata=bounds(positive=True))  # silent device check while nothing sounds
    aplay: str = field(default="aplay", metadata=NOT_CONFIG)  # the player program (tests point it elsewhere)


def render_sounds(folder: Path, level_dbfs: float = -6.0) -> dict[str, Path]:
    """Write one WAV per priority (and the silent probe) into ``folder``; their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {p: write_wav(folder / f"alarm-{p}.wav", burst(spec, level_dbfs=level_dbfs)) for p, spec in BURSTS.items()}
    paths["probe"] = write_wav(folder / "probe.wav", np.zeros(int(0.02 * RATE)))
    return paths


class AlarmSounder:
    """Follows the manager's audio state (``on_event``) and plays bursts on ``player`` from its own thread."""

    def __init__(self, manager: Any, folder: Path, cfg: SoundConfig, player: AplayPlayer | None = None) -> None:
        self.manager = manager
        self.cfg = cfg
        self.player = player or AplayPlayer(cfg.device, cfg.aplay)
        self.sounds = render_sounds(folder, cfg.level_dbfs)
        self.bursts_played = 0
        self.failures = 0
        self._audio = manager.audio()
        self._cond = threading.Condition()
        self._closed = False
        self._current: Playback | None = None
        self._current_prio: str | None = None
        self._next_due = 0.0
        self._next_probe = 0.0  # probe at once
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="edge-ecg-sound", daemon=True)

    def start(self) -> "AlarmSounder":
        self._thread.start()
        return self

    # -- listener (any thread; must be quick: it runs under the manager's lock) -------
    def on_event(self, record: Mapping[str, Any]) -> None:
        audio = record.get("audio")
        if isinstance(audio, str):
            with self._cond:
                if audio != self._audio:
                    self._audio = audio
                    self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(3.0)
        if self._current is not None:
            self._current.stop()
            self._current.close()

    @property
    def state(self) -> dict[str, Any]:
        return {"device": self.cfg.device, "playing": self._current_prio if self._current is not None else None,
                "failing": self._failing, "bursts_played": self.bursts_played}

    # -- sound thread ------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                timeout = 0.05 if self._current is not None else max(0.0, min(self._next_due, self._next_probe) - time.monotonic())
                self._cond.wait(min(timeout, 1.0))
                if self._closed:
                    return
                audio = self._audio
            try:
                self._step(audio)
            except Exception:  # the sounder must never die; the next step tries again
                log.exception("alarm sound step failed")
                time.sleep(0.5)

    def _step(self, audio: str) -> None:
        now = time.monotonic()
        self._reap()
        prio = audio.split("-", 1)[1] if audio.startswith("sounding-") else None
        if prio != self._current_prio:
            self._silence()
            self._current_prio = prio
            if prio is not None:
                self._next_due = now  # a new or changed priority sounds at once
            else:
                self._next_due = float("inf")
        if prio is not None and now >= self._next_due and self._current is None:
            spec = BURSTS[prio]
            self._play(prio)
            self._next_due = now + spec.period_s if spec.period_s is not None else float("inf")
        elif prio is None and self._current is None and now >= self._next_probe:
            self._play("probe")
            self._next_probe = now + self.cfg.probe_s

    def _play(self, name: str) -> None:
        try:
            self._current = self.player.play(self.sounds[name], name)
            if name != "probe":
                self.bursts_played += 1
        except OSError as exc:
            self._current = None
            self._failed(f"cannot run {self.cfg.aplay}: {exc.strerror or exc}")

    def _silence(self) -> None:
        if self._current is not None:
            self._current.stop()
            self._current.close()
            self._current = None

    def _reap(self) -> None:
        cur = self._current
        if cur is None or cur.poll() is None:
            return
        self._current = None
        if cur.killed:
            cur.close()
            return
        if cur.proc.returncode == 0:
            cur.close()
            if self._failing:
                self._failing = False
                self.manager.set_condition(CONDITION, False, self.manager.now, {"device": self.cfg.device})
            return
        reason = cur.error()
        cur.close()
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        self.failures += 1
        self._next_probe = time.monotonic() + min(self.cfg.probe_s, 10.0)
        if not self._failing:
            self._failing = True
            log.error("alarm sound on %s failed: %s", self.cfg.device, reason)
            self.manager.set_condition(CONDITION, True, self.manager.now, {"device": self.cfg.device, "reason": reason})
