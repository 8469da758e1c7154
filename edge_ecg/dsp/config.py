"""Configuration of the streaming analyzer: frozen dataclasses with the clinical limits as defaults.

The rhythm limits default to the PhysioNet/CinC Challenge 2015 alarm definitions, which follow
the bedside monitors' own criteria; a site may change them (the daemon reads them from its
config file through ``from_dict``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from edge_ecg.dsp.af import AfConfig
from edge_ecg.config_table import from_table
from edge_ecg.errors import ConfigError


@dataclass(frozen=True)
class RhythmLimits:
    """Limits of the classical rhythm alarms (CinC 2015 definitions by default)."""

    asystole_s: float = 4.0  # no QRS for at least this long
    brady_bpm: float = 40.0  # extreme bradycardia: HR below this ...
    brady_beats: int = 5  # ... for this many consecutive beats
    tachy_bpm: float = 140.0  # extreme tachycardia: HR above this ...
    tachy_beats: int = 17  # ... for this many consecutive beats
    vt_bpm: float = 100.0  # ventricular tachycardia: ventricular beats faster than this ...
    vt_beats: int = 5  # ... at least this many in a row
    vt_ambiguous: int = 1  # beats of a VT run that may be ambiguous (not confidently normal) instead of "V"
    vf_s: float = 4.0  # ventricular fibrillation/flutter: oscillatory waveform this long
    min_quality: float = 0.3  # below this window score, physiological alarms are withheld


@dataclass(frozen=True)
class FilterConfig:
    """Causal front-end filters (all stateful, so any block cut gives the same output)."""

    mains_hz: float | None = 60.0  # powerline notch (50 or 60; None = off)
    notch_q: float = 30.0
    highpass_hz: float = 0.5  # baseline wander removal
    lowpass_hz: float = 40.0  # band limit of the monitoring signal


@dataclass(frozen=True)
class QrsConfig:
    """Streaming QRS detector settings (times in seconds so any sampling rate works)."""

    band_hz: tuple[float, float] = (3.0, 20.0)  # QRS energy band of the detection feature
    integration_s: float = 0.08  # moving-window integration of the squared slope
    lookahead_s: float = 0.18  # samples awaited after an envelope peak before deciding on it
    locate_s: float = 0.10  # the R peak is searched this far before the envelope peak
    max_delay_s: float = 0.30  # bound on decided_at - R peak index
    refractory_s: float = 0.20  # no second QRS this soon after one
    peak_window_s: float = 0.20  # an envelope peak must be the largest within this distance either side
    fast_peak_window_s: float = 0.15  # ... or within this one while a fast ventricular rhythm runs
    twave_s: float = 0.36  # candidates this soon after a beat must beat the T-wave slope test
    threshold: float = 0.30  # fraction of the running QRS peak level a candidate must exceed
    noise_weight: float = 0.35  # threshold = noise + threshold * (signal - noise) style mixing
    pacer_blank_s: float = 0.05  # blanking after a flagged pacing spike
    learn_s: float = 2.0  # learning phase at stream start (initial levels); its beats are decided at its end
    resting_rr_s: float = 1.0  # the interval the threshold decays over while no interval is known yet (60 bpm)


@dataclass(frozen=True)
class EvidenceLimits:
    """The tuned limits of the VT/VF evidence checks (``edge_ecg.dsp.vt_evidence``: signal quality,
    normal beats going on in a lead, the pulse going on); ``enabled = false`` alarms on the beat
    rule alone. Defaults: selected by record-grouped cross-validation on the CinC 2015 alarms and
    the MIT-BIH DS1 records together (docs/dsp-alarms.md)."""

    enabled: bool = True
    min_bsqi: float = 0.0  # a run needs a lead whose two QRS detectors agree this well (F1); 0: any lead
    min_bsqi_no_rhythm: float = 0.9  # ... this well when no lead showed a regular rhythm before the run to follow
    ecg_continuity: float = 1.0  # normal beats going on in a lead at this share: artifact
    # ... wherever the pulse cannot speak for a run (no pulse channel, or no regular pulse before
    # the run): selected on ECG evidence alone (1.0 while the alarms alone chose it; 0.5 once
    # DS1's false alarms per hour counted too)
    ecg_continuity_no_pulse: float = 0.5
    pulse_continuity: float = 1.0  # the pulse going on at this share: artifact ...
    min_pulses: int = 4  # ... over at least this many pulses due since the run began (until then: wait)
    # a run whose beats look less alike than this (median correlation of each beat with one of the
    # two before it, best usable lead) is noise, not a ventricular rhythm; 0: off
    min_run_similarity: float = 0.85
    # while atrial fibrillation is on, a run whose intervals vary more than this (coefficient of
    # variation of its last 7 RR intervals) is aberrant conduction of the AF, not VT; above 1: off
    af_rr_cv: float = 0.25


@dataclass(frozen=True)
class AnalyzerConfig:
    """Everything ``StreamAnalyzer`` needs besides the sampling rate and lead names."""

    filters: FilterConfig = field(default_factory=FilterConfig)
    qrs: QrsConfig = field(default_factory=QrsConfig)
    rhythm: RhythmLimits = field(default_factory=RhythmLimits)
    evidence: EvidenceLimits = field(default_factory=EvidenceLimits)
    af: AfConfig = field(default_factory=AfConfig)  # the atrial_fibrillation condition (edge_ecg.dsp.af)
    history_s: float = 30.0  # samples kept for window_quality and morphology
    hr_beats: int = 8  # heart rate = 60 / mean of the last hr_beats RR intervals (see README)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "dsp") -> "AnalyzerConfig":
        """Build from a TOML table (the daemon config's ``[dsp]``): types converted or refused and
        unknown keys named (``config_table.from_table``), then the rules spanning fields."""
        return from_table(cls, d, source)

    def validate(self, source: str = "dsp") -> None:
        q = self.qrs
        if q.lookahead_s + q.locate_s > q.max_delay_s + 1e-9:
            raise ConfigError(f"{source}.qrs.lookahead_s", "lookahead_s + locate_s exceeds max_delay_s (the decision-delay bound)")
        if not 0 < q.threshold < 1:
            raise ConfigError(f"{source}.qrs.threshold", f"must be in (0, 1), got {q.threshold}")
        f = self.filters
        if f.mains_hz is not None and f.mains_hz not in (50.0, 60.0, 50, 60):
            raise ConfigError(f"{source}.filters.mains_hz", f"must be 50, 60 or None, got {f.mains_hz}")
        r = self.rhythm
        for name in ("brady_beats", "tachy_beats", "vt_beats"):
            if int(getattr(r, name)) < 1:
                raise ConfigError(f"{source}.rhythm.{name}", "must be >= 1")
        self.af.validate(f"{source}.af")
