"""The values the streaming analyzer hands downstream (alarm manager, daemon, ring buffer, UI).

These are the stable interface of ``edge_ecg.dsp``: frozen dataclasses, only plain Python and
numpy scalars inside, so a pipeline thread can pass them to another thread or log them as JSON
(``to_dict``) without copying. Sample indices are the stream's own running count
(``SampleBlock.start`` based), never wall-clock time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

RHYTHM_KINDS = (
    "asystole",
    "extreme_bradycardia",
    "extreme_tachycardia",
    "ventricular_tachycardia",
    "ventricular_fibrillation",
    "atrial_fibrillation",
)


@dataclass(frozen=True)
class Beat:
    """One detected QRS complex.

    ``index`` is the stream sample index of the R peak (the fiducial the reference annotations
    use); ``decided_at`` the index of the last sample the detector had seen when it committed
    the beat, so ``decided_at - index`` is the decision delay (bounded by the config, <= 300 ms).
    ``ventricular`` is the morphology class (wide or template-discordant premature beat);
    ``label`` is "V" or "N" (``"Q"`` while no dominant template exists yet). ``rr_s`` is the
    interval to the previous beat in seconds (None for the first beat or after a gap).
    ``ambiguous`` marks a beat labelled "N" that does not confidently match the dominant beat
    (low template correlation, wide, or an unusual amplitude): a ventricular run may bridge one.
    """

    index: int
    decided_at: int
    ventricular: bool = False
    label: str = "Q"
    rr_s: float | None = None
    width_s: float | None = None
    correlation: float | None = None
    ambiguous: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LeadQuality:
    """Signal quality of one lead over a span of samples.

    ``score`` is 0 (unusable) .. 1 (clean). The flags say why it is low; ``notes`` spells them
    out for a technical-alarm message ("II: lead off", "V: saturated 12% of samples").
    """

    lead: str
    score: float
    lead_off: bool = False
    flat: bool = False
    saturated: bool = False
    noisy: bool = False
    baseline_unstable: bool = False
    notes: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        return self.score >= 0.5 and not self.lead_off and not self.flat

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


@dataclass(frozen=True)
class WindowQuality:
    """Quality of the samples [start, stop): a score per window plus the per-lead details.

    ``score`` is the best lead's score (the detectors fuse leads, so one good lead suffices to
    trust beats); ``usable`` is what downstream code checks before it raises or withholds a
    physiological alarm; ``notes`` are the per-lead notes joined, for technical conditions.
    ``coverage`` is the fraction of the span the analyzer still had in its history.
    """

    start: int
    stop: int
    score: float
    usable: bool
    leads: tuple[LeadQuality, ...]
    notes: tuple[str, ...] = ()
    coverage: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "stop": self.stop,
            "score": self.score,
            "usable": self.usable,
            "coverage": self.coverage,
            "notes": list(self.notes),
            "leads": [q.to_dict() for q in self.leads],
        }


@dataclass(frozen=True)
class RhythmEvent:
    """A classical rhythm condition starting ("onset") or ending ("offset") at sample ``index``.

    ``kind`` is one of ``RHYTHM_KINDS``. ``evidence`` holds what the decision rested on, for the
    event log and the clinician: beat indices, rates in bpm, the run length, lead quality, etc.
    """

    kind: str
    state: str  # "onset" | "offset"
    index: int
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "state": self.state, "index": self.index, "evidence": dict(self.evidence)}


@dataclass(frozen=True)
class AnalysisUpdate:
    """What ``StreamAnalyzer.process(block)`` returns for one block.

    ``start``/``stop`` are the block's sample range; ``beats`` are beats newly committed while
    processing it (their ``index`` may lie before ``start``, by at most the decision delay;
    detections while ventricular fibrillation/flutter is active are fibrillation or flutter waves,
    not QRS complexes, and are not reported);
    ``heart_rate`` is the displayed rate in bpm (None until enough beats, or during asystole);
    ``quality`` is per lead over this block; ``events`` are rhythm onsets/offsets in order;
    ``active`` is the set of rhythm kinds currently on.
    """

    start: int
    stop: int
    beats: tuple[Beat, ...] = ()
    heart_rate: float | None = None
    quality: tuple[LeadQuality, ...] = ()
    events: tuple[RhythmEvent, ...] = ()
    active: frozenset[str] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "stop": self.stop,
            "beats": [b.to_dict() for b in self.beats],
            "heart_rate": self.heart_rate,
            "quality": [q.to_dict() for q in self.quality],
            "events": [e.to_dict() for e in self.events],
            "active": sorted(self.active),
        }
