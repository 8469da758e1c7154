"""False alarms per monitored hour: whole records replayed through the daemon's DSP chain.

Every record of a folder is replayed as the daemon would receive it (``ReplaySource``, 1 s blocks,
pulse channels beside the leads) into the analyzer the daemon builds (``service.pipeline.
make_analyzer`` with the daemon config's ``[dsp]`` table). Each rhythm condition onset is an alarm
raised; it is *true* when the span it was on overlaps an annotated episode of its kind (1 s
tolerance), *false* otherwise. Episodes follow the PhysioNet/CinC 2015 definitions, from the
reference beat and rhythm annotations:

* ventricular tachycardia: >= 5 consecutive ventricular beats (V, E) faster than 100 bpm, or a
  ``(VT`` rhythm episode holding at least 5 beats (MIT-BIH marks runs of 3 and 4 ventricular
  beats ``(VT`` too; by the CinC definition those are short runs, not VT);
* ventricular fibrillation/flutter: ``(VFL``/``(VF`` episodes and ``[`` ... ``]`` spans;
* asystole: >= 4 s between consecutive beats;
* extreme bradycardia: 5 consecutive beat-to-beat rates below 40 bpm;
* extreme tachycardia: 17 consecutive beat-to-beat rates above 140 bpm;
* atrial fibrillation: ``(AFIB`` episodes.

An episode is *missed* when no alarm of its kind was on or raised within 10 s of its start (the
IEC 60601-2-27 budget). Two kinds of VT false alarm are counted apart (and still count false): on
ventricular runs of 3-4 beats (false by the definition but not absurd), and during annotated
ventricular flutter or fibrillation (flutter waves read as a fast ventricular run: the right danger
under its neighbour's name, usually before the VF rule's 4 s have passed).

Folders: WFDB records with ``.atr`` annotations (MIT-BIH), or the noise-stress excerpts (one value
per line in mV; ``NAME_ann.csv`` with reference R peaks where present). A record without rhythm
annotations can have no true alarm: each of its alarms counts false (said in the output).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from edge_ecg.errors import InputError
from edge_ecg.records import Record, read_record

VENTRICULAR = frozenset("VE")
TOLERANCE_S = 1.0
LATENCY_S = 10.0  # an episode with no alarm this soon after its start is missed (IEC 60601-2-27's budget) ...
# ... except AF, raised only once its evidence has held for 30 s (AfConfig.onset_s) over a window of
# up to 60 beats: an AF episode is missed when no alarm came within a minute (the AF evaluation's rule)
LATENCY_BY_KIND_S = {"atrial_fibrillation": 60.0}
REFERENCE_KINDS = ("asystole", "extreme_bradycardia", "extreme_tachycardia", "ventricular_tachycardia", "ventricular_fibrillation",
                   "atrial_fibrillation")


def latency_budget(kind: str) -> float:
    return LATENCY_BY_KIND_S.get(kind, LATENCY_S)


def kinds() -> tuple[str, ...]:
    """The conditions scored: those with a reference here that the analyzer can raise."""
    from edge_ecg.dsp.types import RHYTHM_KINDS

    return tuple(k for k in REFERENCE_KINDS if k in RHYTHM_KINDS)


# sampling rates of the noise-stress excerpts (../shared/ecg/README.md): 118eNN from MIT-BIH, e0NNN from the European ST-T
NOISE_STRESS_FS = {"118e": 360.0, "e0": 250.0}


@dataclass
class Reference:
    """Annotated episodes per kind (sample spans) and short ventricular runs, for one record."""

    episodes: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    short_v_runs: list[tuple[int, int]] = field(default_factory=list)
    annotated: bool = True  # False: no rhythm reference at all (every alarm counts false)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, last] index pairs of True runs in a boolean array."""
    if mask.size == 0:
        return []
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0] - 1))


def reference_from_beats(samples: np.ndarray, symbols: Sequence[str], fs: float,
                         rhythms: Sequence[tuple[int, str]] = (), flutter: Sequence[tuple[int, int]] = (), n_samples: int | None = None) -> Reference:
    """Episodes from beat annotations (``samples``, ``symbols``) and rhythm changes (sample, aux note)."""
    samples = np.asarray(samples, dtype=np.int64)
    sym = np.asarray(list(symbols))
    ref = Reference({k: [] for k in REFERENCE_KINDS})
    end = int(n_samples) if n_samples is not None else (int(samples[-1]) + 1 if samples.size else 0)
    # ventricular runs
    v = np.isin(sym, list(VENTRICULAR))
    for a, b in _runs(v):
        n = b - a + 1
        if n >= 5:
            rr = np.diff(samples[a : b + 1]) / fs
            if 60.0 / float(np.mean(rr)) > 100.0:
                ref.episodes["ventricular_tachycardia"].append((int(samples[a]), int(samples[b])))
        elif n >= 3:
            ref.short_v_runs.append((int(samples[a]), int(samples[b])))
    # rhythm episodes
    spans: dict[str, list[tuple[int, int]]] = {"(VT": [], "(VFL": [], "(VF": [], "(AFIB": []}
    for i, (s, note) in enumerate(rhythms):
        note = note.strip().rstrip("\x00")
        if note in spans:
            stop = rhythms[i + 1][0] if i + 1 < len(rhythms) else end
            spans[note].append((int(s), int(stop)))
    for a, b in spans["(VT"]:
        n_beats = int(np.count_nonzero((samples >= a) & (samples < b)))
        (ref.episodes["ventricular_tachycardia"] if n_beats >= 5 else ref.short_v_runs).append((a, b))
    ref.episodes["ventricular_fibrillation"] += spans["(VFL"] + spans["(VF"] + [(int(a), int(b)) for a, b in flutter]
    ref.episodes["atrial_fibrillation"] += spans["(AFIB"]
    if samples.size >= 2:
        rr = np.diff(samples) / fs
        inst = 60.0 / rr
        vf = ref.episodes["ventricular_fibrillation"]
        for a, b in _runs(rr >= 4.0):
            gap = (int(samples[a]), int(samples[b + 1]))
            if not any(s <= gap[1] and e >= gap[0] for s, e in vf):  # flutter waves are not beats, but not asystole
                ref.episodes["asystole"].append(gap)
        for kind, cond, n in (("extreme_bradycardia", inst < 40.0, 5), ("extreme_tachycardia", inst > 140.0, 17)):
            for a, b in _runs(cond):
                if b - a + 1 >= n:
                    # the alarm condition starts once n intervals are met
                    ref.episodes[kind].append((int(samples[a]), int(samples[b + 1])))
    for k in ref.episodes:
        ref.episodes[k] = _merge(sorted(ref.episodes[k]))
    return ref


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def wfdb_reference(hea: Path, n_samples: int, fs: float) -> Reference:
    import wfdb

    from edge_ecg.eval.qrs_eval import BEAT_SYMBOLS

    try:
        ann = wfdb.rdann(str(hea.with_suffix("")), "atr")
    except Exception as exc:
        raise InputError(hea.with_suffix(".atr"), f"cannot read reference annotations: {exc}") from exc
    sym = list(ann.symbol)
    samp = np.asarray(ann.sample, dtype=np.int64)
    notes = list(ann.aux_note or [""] * len(sym))
    is_beat = np.array([s in BEAT_SYMBOLS for s in sym], dtype=bool)
    rhythms = [(int(s), n) for s, y, n in zip(samp, sym, notes) if y == "+" and n]
    flutter, open_at = [], None
    for s, y in zip(samp, sym):
        if y == "[":
            open_at = int(s)
        elif y == "]" and open_at is not None:
            flutter.append((open_at, int(s)))
            open_at = None
    return reference_from_beats(samp[is_beat], [s for s, b in zip(sym, is_beat) if b], fs, rhythms, flutter, n_samples)


def folder_records(folder: str | Path) -> list[tuple[Record, Reference]]:
    """Every record of ``folder`` with its reference (WFDB + ``.atr``, or noise-stress CSVs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    out: list[tuple[Record, Reference]] = []
    for hea in sorted(folder.glob("*.hea")):
        if not hea.with_suffix(".atr").is_file():
            continue
        rec = read_record(hea)
        out.append((rec, wfdb_reference(hea, rec.n_samples, rec.fs)))
    for csv in sorted(folder.glob("*.csv")):
        if csv.stem.endswith("_ann"):
            continue
        fs = next((v for k, v in NOISE_STRESS_FS.items() if csv.stem.startswith(k)), None)
        if fs is None:
            continue
        from edge_ecg.eval.qrs_eval import read_csv_column

        x = read_csv_column(csv) * 1000.0  # mV -> uV
        rec = Record(signals=x[:, None].astype(np.float32), fs=fs, leads=("II",), name=csv.stem, source=str(csv))
        ann = csv.with_name(csv.stem + "_ann.csv")
        if ann.is_file():
            peaks = read_csv_column(ann).astype(np.int64)
            ref = reference_from_beats(peaks, ["N"] * len(peaks), fs, n_samples=rec.n_samples)
        else:
            ref = Reference({k: [] for k in REFERENCE_KINDS}, annotated=False)
        out.append((rec, ref))
    if not out:
        raise InputError(folder, "no WFDB records with .atr annotations and no noise-stress excerpts (118eNN.csv, e0NNN.csv)")
    return out


# -- streaming ----------------------------------------------------------------------------------
@dataclass
class Alarm:
    record: str
    kind: str
    fs: float
    onset: int  # sample index the condition starts at
    raised_at: int  # stream index at the end of the block that raised it (what the daemon saw)
    offset: int | None = None
    end: int | None = None  # where the replay ended, for an alarm still on then: it lasted until there
    true: bool | None = None
    short_v_run: bool = False
    on_vf: bool = False  # a false VT alarm during annotated ventricular flutter/fibrillation

    @property
    def stop(self) -> int:
        """The last index the alarm was on: its offset, the end of the replay if it never
        cleared, else (not replayed to the end) where it was raised."""
        if self.offset is not None:
            return self.offset
        return self.end if self.end is not None else self.raised_at


def stream_alarms(record: Record, dsp_config: Mapping[str, Any] | None = None, block_s: float = 1.0) -> list[Alarm]:
    """Replay ``record`` through the daemon's analyzer; one ``Alarm`` per rhythm onset."""
    return replay_record(record, dsp_config, block_s)[1]


def replay_record(record: Record, dsp_config: Mapping[str, Any] | None = None, block_s: float = 1.0) -> tuple[list, list[Alarm]]:
    """Replay ``record`` through the daemon's analyzer: the beats it reported and its alarms."""
    from edge_ecg.service.pipeline import make_analyzer
    from edge_ecg.stream.replay_source import ReplaySource

    an = make_analyzer(record.fs, record.leads, dict(dsp_config or {}))
    alarms: list[Alarm] = []
    beats: list = []
    open_: dict[str, Alarm] = {}
    last = 0
    for blk in ReplaySource(record, speed=0, block_s=block_s):
        up = an.process(blk)
        beats.extend(up.beats)
        for ev in up.events:
            if ev.state == "onset":
                a = Alarm(record.name, ev.kind, record.fs, int(ev.index), int(up.stop))
                alarms.append(a)
                open_[ev.kind] = a
            elif ev.kind in open_:
                open_.pop(ev.kind).offset = int(ev.index)
        last = int(up.stop)
    for a in open_.values():
        a.end = last
    return beats, alarms


def _overlaps(a: Alarm, s: int, e: int, tol: int) -> bool:
    """Was the alarm on during [s, e], within ``tol`` samples either side?"""
    return a.onset <= e + tol and a.stop >= s - tol


def score_alarms(alarms: list[Alarm], ref: Reference, fs: float) -> dict[str, dict[str, Any]]:
    """Mark each alarm true/false and count missed episodes, per kind."""
    tol = int(TOLERANCE_S * fs)
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds():
        mine = [a for a in alarms if a.kind == kind]
        eps = ref.episodes.get(kind, [])
        for a in mine:
            a.true = ref.annotated and any(_overlaps(a, s, e, tol) for s, e in eps)
            if kind == "ventricular_tachycardia" and not a.true:
                a.short_v_run = any(_overlaps(a, s, e, tol) for s, e in ref.short_v_runs)
                # flutter waves read as a fast ventricular run: the right danger named as its neighbour
                a.on_vf = any(_overlaps(a, s, e, tol) for s, e in ref.episodes.get("ventricular_fibrillation", []))
        missed = []
        latencies = []
        for s, e in eps:
            hit = [a for a in mine if a.true and _overlaps(a, s, e, tol)]
            lat = min((max(a.raised_at - s, 0) / fs for a in hit), default=None)
            if lat is None or lat > latency_budget(kind):
                missed.append([round(s / fs, 1), round(e / fs, 1), None if lat is None else round(lat, 1)])
            if lat is not None:
                latencies.append(lat)
        out[kind] = {"raised": len(mine), "true": sum(bool(a.true) for a in mine), "false": sum(not a.true for a in mine),
                     "episodes": len(eps), "missed": len(missed), "missed_episodes": missed, "latencies_s": latencies,
                     "false_on_short_v_runs": sum(a.short_v_run for a in mine),
                     "false_on_vf": sum(a.on_vf for a in mine)}
    return out


@dataclass
class StreamReport:
    folder: str
    hours: float
    per_record: dict[str, dict[str, dict[str, Any]]]
    unannotated: list[str]
    alarms: list[Alarm]
    record_hours: dict[str, float] = field(default_factory=dict)  # per record; enables the intervals

    def conditions(self) -> dict[str, dict[str, Any]]:
        out = {}
        for kind in kinds():
            rows = [r[kind] for r in self.per_record.values()]
            d = {k: sum(r[k] for r in rows) for k in ("raised", "true", "false", "episodes", "missed", "false_on_short_v_runs", "false_on_vf")}
            lat = [x for r in rows for x in r["latencies_s"]]
            d["false_per_hour"] = round(d["false"] / self.hours, 3) if self.hours > 0 else None
            if self.record_hours and self.hours > 0:
                d["false_per_hour_ci95"] = self._false_per_hour_ci(kind)
            d["max_latency_s"] = round(max(lat), 2) if lat else None
            d["latency_budget_s"] = latency_budget(kind)
            d["missed_episodes"] = [[name, *m] for name, r in self.per_record.items() for m in r[kind]["missed_episodes"]]
            out[kind] = d
        return out

    def _false_per_hour_ci(self, kind: str) -> list[float]:
        """95% interval of false alarms per hour, resampling whole records (false alarms cluster
        in a few patients, so a per-hour Poisson interval would be too narrow)."""
        from edge_ecg.eval.crossval import bootstrap_interval

        def stat(pick: Sequence[str]) -> float:
            h = sum(self.record_hours[n] for n in pick)
            return sum(self.per_record[n][kind]["false"] for n in pick) / h if h > 0 else float("nan")

        lo, hi = bootstrap_interval(list(self.per_record), stat)
        return [round(lo, 3), round(hi, 3)]

    def to_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "records": len(self.per_record), "hours": round(self.hours, 3),
                "record_hours": {n: round(h, 4) for n, h in self.record_hours.items()},
                "conditions": self.conditions(), "unannotated_records": self.unannotated,
                "false_alarms": [{"record": a.record, "kind": a.kind, "onset_s": round(a.onset / a.fs, 1),
                                  "raised_s": round(a.raised_at / a.fs, 1), "short_v_run": a.short_v_run, "on_vf": a.on_vf}
                                 for a in self.alarms if a.true is False]}

    def format(self) -> str:
        c = self.conditions()
        head = f"{'condition':<26} {'raised':>6} {'true':>5} {'false':>5} {'false/h':>8} {'episodes':>8} {'missed':>6} {'max latency s':>13}"
        lines = [f"{self.folder}: {len(self.per_record)} records, {self.hours:.2f} h monitored, 1 s blocks, daemon DSP chain", head, "-" * len(head)]
        for kind, d in c.items():
            lat = "-" if d["max_latency_s"] is None else f"{d['max_latency_s']:.1f}"
            lines.append(f"{kind:<26} {d['raised']:>6} {d['true']:>5} {d['false']:>5} {d['false_per_hour']:>8.2f} {d['episodes']:>8} {d['missed']:>6} {lat:>13}")
        v = c["ventricular_tachycardia"]
        lines.append(f"(true: on an annotated episode of its kind, CinC 2015 definitions, {TOLERANCE_S:g} s tolerance; missed: "
                     f"no alarm within {LATENCY_S:g} s of the episode's start, AF {latency_budget('atrial_fibrillation'):g} s; "
                     f"{v['false_on_short_v_runs']} of VT's false alarms fall on "
                     f"3-4 beat ventricular runs, {v['false_on_vf']} on ventricular flutter/fibrillation)")
        if self.unannotated:
            lines.append(f"(no rhythm reference for {', '.join(self.unannotated)}: every alarm there counts false)")
        return "\n".join(lines)


def evaluate_stream(folder: str | Path, dsp_config: Mapping[str, Any] | None = None, block_s: float = 1.0,
                    names: Sequence[str] | None = None, progress: Callable[[str], None] | None = None) -> StreamReport:
    """Replay every record of ``folder`` and score each condition's alarms (see the module doc)."""
    per: dict[str, dict[str, dict[str, Any]]] = {}
    unannotated: list[str] = []
    seconds = 0.0
    every: list[Alarm] = []
    hours: dict[str, float] = {}
    for rec, ref in folder_records(folder):
        if names and rec.name not in names:
            continue
        alarms = stream_alarms(rec, dsp_config, block_s)
        per[rec.name] = score_alarms(alarms, ref, rec.fs)
        every += alarms
        seconds += rec.duration_s
        hours[rec.name] = rec.duration_s / 3600.0
        if not ref.annotated:
            unannotated.append(rec.name)
        if progress:
            progress(rec.name)
    return StreamReport(str(folder), seconds / 3600.0, per, unannotated, every, hours)
