"""Out-of-fold figures for the VT evidence limits on the CinC 2015 alarms, from one pass per record.

Each record is streamed once, whole (what a bedside monitor has seen by the alarm), through the
daemon's DSP chain with the evidence checks measuring but never confirming: every judgement of
every candidate run is logged with its features (``StreamAnalyzer.evidence_log``), and so is the
end of each run. Because a withheld run goes on exactly as a confirmed one would (the beat rule
does not depend on whether it alarmed), replaying that log under any limits gives exactly what
the streaming detector with those limits raises (``replay``; checked against a real stream with
the shipped limits in the tests). The logs are cached under ``.cache/eval`` keyed by the DSP
source, so the search over limits costs seconds.

``cross_validated`` then chooses the limits inside record-grouped folds (``crossval.py``) by the
challenge score on the training records and scores them on the held-out ones; the pooled
held-out decisions are the out-of-fold figure, with 95% record-bootstrap intervals. References in
the same run: raise every alarm, and the previous detector (the beat rule alone, evidence off).

Long records (``streams``: MIT-BIH, annotated beat by beat) can join the selection: each is
streamed whole once with the same logging, and ``stream_replay`` turns its log into the alarms
the detector with given limits raises over the whole record (checked against the daemon's chain
in the tests). Each of its annotated VT episodes alarmed in time counts a true positive, each one
missed a false negative, each false alarm a false positive, beside the CinC alarms in the same
score; the long records are dealt over folds of their own, paired with the alarms' by index, so
their false alarms per hour are scored out of fold too. Without them, the limits were chosen on 10 s alarm windows alone and the long
records, where false alarms per hour are measured, had no say.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from edge_ecg.dsp.config import AnalyzerConfig, EvidenceLimits
from edge_ecg.dsp.vt_evidence import WAITING, judge
from edge_ecg.eval.alarm_eval import ALARM_AT_S, WINDOW_S, read_truth
from edge_ecg.eval.crossval import Fold, bootstrap_interval, record_folds
from edge_ecg.eval.source_key import source_key
from edge_ecg.eval.stream_eval import Alarm, Reference, score_alarms, wfdb_reference
from edge_ecg.errors import InputError

log = logging.getLogger(__name__)

CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache" / "eval" / "alarms"
# the grid searched inside each fold: few values, each a physiologically plausible setting
# (a value above 1 switches a veto off)
GRID = {
    "min_bsqi": (0.0, 0.5, 0.6, 0.7, 0.8, 0.9),
    "min_bsqi_no_rhythm": (0.0, 0.5, 0.6, 0.7, 0.8, 0.9),  # the same scale: bSQI where check 2 cannot speak
    "ecg_continuity": (0.5, 0.67, 0.75, 1.0, 2.0),
    "pulse_continuity": (0.5, 0.67, 0.75, 1.0, 2.0),
    "min_pulses": (2, 3, 4),  # pulses due before the pulse may veto (2: as soon as it is a rhythm)
    "min_run_similarity": (0.0, 0.7, 0.75, 0.8, 0.85, 0.9),  # how alike a run's beats must be (0: off)
    "af_rr_cv": (0.15, 0.2, 0.25, 0.3, 10.0),  # RR variation of a run while AF is on (10: off)
}
# which way each limit vetoes less (+1: a higher value; -1: a lower one): ties in the selection go
# to the least aggressive setting, compared in this order
_LENIENT = {"min_bsqi": -1, "min_bsqi_no_rhythm": -1, "ecg_continuity": 1, "ecg_continuity_no_pulse": 1,
            "pulse_continuity": 1, "min_pulses": 1, "min_run_similarity": -1, "af_rr_cv": 1}
# the inner axes: searched in turn with the others (``select``), starting from their "off" values
_INNER = ("min_run_similarity", "af_rr_cv")
_OFF = {k: max(GRID[k], key=lambda v, s=_LENIENT[k]: s * v) for k in _INNER}
_MAX_ROUNDS = 5


@dataclass
class RecordLog:
    """One record's judgements (``kind`` vt / vt_end entries, stream indices from its first sample)."""

    name: str
    truth: bool
    fs: float
    entries: list[dict[str, Any]]

    def to_json(self) -> dict:
        return {"name": self.name, "truth": self.truth, "fs": self.fs, "entries": self.entries}


@dataclass
class StreamLog:
    """One long record's judgements over its whole length, and its annotated episodes."""

    name: str
    fs: float
    n_samples: int
    entries: list[dict[str, Any]]
    reference: Reference = field(default_factory=Reference, repr=False)

    def to_json(self) -> dict:
        return {"name": self.name, "fs": self.fs, "n_samples": self.n_samples, "entries": self.entries}


def _judgements(path: Path, block_s: float, stop_s: float | None) -> tuple[float, int, list[dict[str, Any]]]:
    """Stream a record (to ``stop_s``, or whole) and log every VT judgement and run end:
    measure everything, confirm nothing (a bSQI above 1 can never be reached)."""
    from edge_ecg.dsp.analyzer import StreamAnalyzer
    from edge_ecg.eval.qrs_eval import stream_record
    from edge_ecg.records import read_record

    rec = read_record(path)
    an = StreamAnalyzer(rec.fs, rec.leads, AnalyzerConfig(evidence=EvidenceLimits(min_bsqi=2.0)))
    an.evidence_log = []
    stop = None if stop_s is None else int(stop_s * rec.fs) + int(round(0.3 * rec.fs)) + 1
    stream_record(rec, block_s, stop=stop, analyzer=an)
    return rec.fs, rec.n_samples, [e for e in an.evidence_log if e["kind"] in ("vt", "vt_end")]


def record_log(path: Path, truth: bool, block_s: float = 1.0) -> RecordLog:
    """Stream one record to the alarm (plus the decision delay) and log every judgement."""
    fs, _, entries = _judgements(path, block_s, ALARM_AT_S)
    return RecordLog(path.stem, truth, fs, entries)


def stream_log(path: Path, block_s: float = 1.0) -> StreamLog:
    """Stream one long annotated record whole and log every judgement."""
    fs, n, entries = _judgements(path, block_s, None)
    return StreamLog(path.stem, fs, n, entries, wfdb_reference(path, n, fs))


def collect(folder: str | Path, names: Sequence[str] | None = None, block_s: float = 1.0,
            cache: Path | None = CACHE_DIR, progress: Callable[[str], None] | None = None, jobs: int = 1) -> dict[str, RecordLog]:
    """``RecordLog`` per alarm of ``folder`` (``alarms.csv``), from the cache where it is fresh."""
    folder = Path(folder)
    truth = read_truth(folder)
    heas = {}
    for name in sorted(truth):
        if names and name not in names:
            continue
        heas[name] = folder / f"{name}.hea"
        if not heas[name].is_file():
            raise InputError(heas[name], "listed in alarms.csv but missing")
    load = lambda d: RecordLog(d["name"], d["truth"], d["fs"], d["entries"])  # noqa: E731
    return _cached(heas, [(heas[n], truth[n], block_s) for n in heas], _record_log_args, load,
                   source_key(f"block_s={block_s}"), cache, progress, jobs)


def collect_streams(folder: str | Path, block_s: float = 1.0, cache: Path | None = CACHE_DIR,
                    progress: Callable[[str], None] | None = None, jobs: int = 1) -> dict[str, StreamLog]:
    """``StreamLog`` per WFDB record of ``folder`` with ``.atr`` annotations, from the cache where fresh."""
    from edge_ecg.eval.qrs_eval import find_wfdb

    heas = {p.stem: p for p in find_wfdb(Path(folder))}
    if not heas:
        raise InputError(Path(folder), "no WFDB record with .atr annotations to stream")

    def load(d: dict) -> StreamLog:
        hea = heas[d["name"]]
        return StreamLog(d["name"], d["fs"], d["n_samples"], d["entries"], wfdb_reference(hea, d["n_samples"], d["fs"]))

    return _cached(heas, [(h, block_s) for h in heas.values()], _stream_log_args, load,
                   source_key(f"stream block_s={block_s}"), cache, progress, jobs)


def _cached(heas: dict[str, Path], args: list[tuple], make: Callable, load: Callable[[dict], Any], key: str,
            cache: Path | None, progress: Callable[[str], None] | None, jobs: int) -> dict[str, Any]:
    """``make(*a)`` per record (in ``jobs`` processes), or its log from ``cache/key`` where it is
    there: a change to the DSP or stream code changes ``key`` and so invalidates cached logs."""
    out: dict[str, Any] = {}
    missing = []
    for (name, hea), a in zip(heas.items(), args):
        cp = None if cache is None else cache / key / f"{name}.json"
        if cp is not None and cp.is_file():
            out[name] = load(json.loads(cp.read_text()))
        else:
            missing.append((name, cp, a))
    if jobs > 1 and len(missing) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            results = list(zip(missing, ex.map(make, [a for _, _, a in missing])))
    else:
        results = (((name, cp, a), make(a)) for name, cp, a in missing)
    for (name, cp, _), rl in results:
        if cp is not None:
            cp.parent.mkdir(parents=True, exist_ok=True)
            tmp = cp.with_suffix(".tmp")
            tmp.write_text(json.dumps(rl.to_json()))
            tmp.replace(cp)
        out[name] = rl
        if progress:
            progress(name)
    return {n: out[n] for n in heas}


def _record_log_args(a: tuple) -> RecordLog:
    return record_log(*a)


def _stream_log_args(a: tuple) -> StreamLog:
    return stream_log(*a)


# -- replay and decisions ---------------------------------------------------------------------
def _vt_alarms(entries: list[dict[str, Any]], decide: Callable[[dict], "bool | tuple[bool, str]"]
               ) -> Iterator[tuple[int, int, int | None]]:
    """(onset, raised at, cleared at) of each VT alarm the detector whose confirmation is
    ``decide(features)`` raises from a judgement log, as ``RhythmDetector`` does: a run is raised
    at its first confirmed judgement (at the onset of its last ``vt_beats`` beats), or as it ends if
    its last judgement was ``WAITING`` (no check could decide yet), and clears at its end; cleared
    at None when it is still on as the log ends. ``decide`` returns a bool or ``judge``'s
    (confirm, reason). Lazy, so a caller that has its answer stops judging."""
    active: tuple[int, int] | None = None
    waiting: int | None = None  # onset of the current run while its checks wait
    for e in entries:
        if e["kind"] == "vt":
            if active is None:
                verdict = decide(e)
                ok, why = verdict if isinstance(verdict, tuple) else (bool(verdict), "")
                waiting = e["onset"] if (not ok and why == WAITING) else None
                if ok:
                    active = (e["onset"], e["now"])
        elif e["kind"] == "vt_end":
            if active is None and waiting is not None:
                active = (waiting, e["now"])  # raised as the run ends
            waiting = None
            if active is not None:
                yield active[0], active[1], e["now"]
                active = None
    if active is not None:
        yield active[0], active[1], None


def replay(rl: RecordLog, decide: Callable[[dict], "bool | tuple[bool, str]"]) -> tuple[bool, float | None]:
    """Would the detector whose confirmation is ``decide(features)`` have had VT on in the alarm
    window? Returns (raised, onset seconds): an alarm raised in the window, or raised before it
    and still on when it begins."""
    lo, hi = int((ALARM_AT_S - WINDOW_S) * rl.fs), int(ALARM_AT_S * rl.fs)
    for onset, _, cleared in _vt_alarms(rl.entries, decide):
        if lo <= onset <= hi or (onset < lo and (cleared is None or cleared >= lo)):
            return True, onset / rl.fs
    return False, None


def stream_replay(sl: StreamLog, decide: Callable[[dict], "bool | tuple[bool, str]"], block_s: float = 1.0) -> list[Alarm]:
    """The VT alarms ``decide`` raises over a whole long record (``_vt_alarms``); ``raised_at`` is
    the end of the block that raised it, as the daemon saw."""
    blk = max(int(round(block_s * sl.fs)), 1)
    alarms: list[Alarm] = []
    for onset, raised, cleared in _vt_alarms(sl.entries, decide):
        a = Alarm(sl.name, "ventricular_tachycardia", sl.fs, int(onset), (int(raised) // blk + 1) * blk)
        if cleared is None:
            a.end = sl.n_samples
        else:
            a.offset = int(cleared)
        alarms.append(a)
    return alarms


def stream_counts(sl: StreamLog, decide: Callable[[dict], "bool | tuple[bool, str]"]) -> Counts:
    """A long record's share of the challenge score: each annotated VT episode alarmed in time a
    true positive, each missed a false negative, each false alarm a false positive (no negatives:
    a long record has no count of alarms rightly not raised)."""
    s = score_alarms(stream_replay(sl, decide), sl.reference, sl.fs)["ventricular_tachycardia"]
    return Counts(tp=s["episodes"] - s["missed"], fn=s["missed"], fp=s["false"])


def decider(limits: EvidenceLimits, use_pulse: bool) -> Callable[[dict], tuple[bool, str]]:
    return lambda f: judge(f, limits, use_pulse)


def always(_: dict) -> bool:
    """The previous detector: the beat rule alone (every candidate confirmed)."""
    return True


@dataclass
class Counts:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[bool, bool]]) -> "Counts":
        c = cls()
        for truth, raised in pairs:
            if truth:
                c.tp += raised
                c.fn += not raised
            else:
                c.fp += raised
                c.tn += not raised
        return c

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp, self.tn + other.tn)

    @property
    def tpr(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def tnr(self) -> float:
        return self.tn / (self.tn + self.fp) if self.tn + self.fp else float("nan")

    @property
    def score(self) -> float:
        den = self.tp + self.tn + self.fp + 5 * self.fn
        return (self.tp + self.tn) / den if den else float("nan")

    def to_dict(self) -> dict:
        return {"tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn,
                "tpr": round(self.tpr, 4), "tnr": round(self.tnr, 4), "score": round(self.score, 4)}


def grid(use_pulse: bool, no_pulse_continuity: float = EvidenceLimits.ecg_continuity_no_pulse,
         inner: dict[str, float] | None = None) -> list[EvidenceLimits]:
    """The limits searched on the outer axes, with the inner ones (``_INNER``) held at ``inner``
    (default: those checks off). Without a pulse the ECG continuity grid sets
    ``ecg_continuity_no_pulse`` (the limit ``judge`` applies then) and the pulse limits stay at
    their defaults; with a pulse it sets ``ecg_continuity``, and ``no_pulse_continuity`` serves the
    runs the pulse cannot speak for."""
    held = dict(_OFF if inner is None else inner)
    pulses = GRID["pulse_continuity"] if use_pulse else (EvidenceLimits.pulse_continuity,)
    counts = GRID["min_pulses"] if use_pulse else (EvidenceLimits.min_pulses,)
    ecg = (lambda e: {"ecg_continuity": e, "ecg_continuity_no_pulse": no_pulse_continuity}) if use_pulse else \
        (lambda e: {"ecg_continuity_no_pulse": e})
    return [EvidenceLimits(min_bsqi=b, min_bsqi_no_rhythm=u, pulse_continuity=p, min_pulses=m, **ecg(e), **held)
            for b, u, e, p, m in itertools.product(GRID["min_bsqi"], GRID["min_bsqi_no_rhythm"], GRID["ecg_continuity"], pulses, counts)
            if (m == counts[0] or p <= 1.0)  # a count means nothing with the pulse veto off
            and (u > b or u == GRID["min_bsqi_no_rhythm"][0])]  # a bar no higher than min_bsqi adds nothing


def inner_grid(outer: EvidenceLimits) -> list[EvidenceLimits]:
    """``outer`` with every combination of the inner axes' values."""
    return [dataclasses.replace(outer, **dict(zip(_INNER, v))) for v in itertools.product(*(GRID[k] for k in _INNER))]


def select(logs: dict[str, RecordLog], use_pulse: bool, streams: dict[str, StreamLog] | None = None,
           no_pulse: float | None = None) -> EvidenceLimits:
    """The limits with the best challenge score on ``logs``; ties go to the higher TPR, then to
    the least aggressive setting (fewest vetoes: lowest bSQI and similarity bars, highest
    continuity and RR-variation limits, most pulses due before the pulse may veto).

    The search alternates: the best outer limits with the inner ones held (at first: those checks
    off), then the best inner limits with the outer ones held, until neither moves (each step keeps
    the best so far, so it ends; a full product of all axes is 30x the replays). With a pulse, the
    selection is nested: the ECG continuity limit for runs the pulse cannot speak for is first
    selected on ECG evidence alone (the selection without a pulse, on the same records), then the
    rest with it fixed. The result is the whole shipped limit set: a source without a pulse channel
    runs it too, judged on the ECG alone. ``streams`` (long records) count in the score beside the
    alarms: their episodes alarmed and missed, and their false alarms (``stream_counts``).
    ``no_pulse``: that ECG-only selection's continuity limit, where the caller already has it."""
    if not use_pulse:
        no_pulse = EvidenceLimits.ecg_continuity_no_pulse
    elif no_pulse is None:
        no_pulse = select(logs, False, streams).ecg_continuity_no_pulse
    best: EvidenceLimits | None = None
    inner = dict(_OFF)
    for _ in range(_MAX_ROUNDS):
        outer = _best(logs, grid(use_pulse, no_pulse, inner), use_pulse, streams)
        found = _best(logs, inner_grid(outer), use_pulse, streams)
        if found == best:
            break
        best = found
        inner = {k: getattr(best, k) for k in _INNER}
    assert best is not None
    return best


def _best(logs: dict[str, RecordLog], limits: Iterable[EvidenceLimits], use_pulse: bool,
          streams: dict[str, StreamLog] | None = None) -> EvidenceLimits:
    best, best_key = None, None
    for lim in limits:
        c = Counts.of((rl.truth, replay(rl, decider(lim, use_pulse))[0]) for rl in logs.values())
        for sl in (streams or {}).values():
            c = c + stream_counts(sl, decider(lim, use_pulse))
        key = (round(c.score, 9), c.tpr, *(sign * getattr(lim, k) for k, sign in _LENIENT.items()))
        if best_key is None or key > best_key:
            best, best_key = lim, key
    assert best is not None
    return best


@dataclass
class CvReport:
    """Out-of-fold decisions of the evidence-gated detector and the references, per record."""

    truth: dict[str, bool]
    rows: dict[str, dict[str, bool]]  # row name -> record -> raised
    chosen: dict[str, list[dict]] = field(default_factory=dict)  # row -> limits per fold
    shipped: dict[str, dict] = field(default_factory=dict)  # row -> limits selected on all records
    k: int = 5
    streams: dict[str, dict[str, Counts]] = field(default_factory=dict)  # row -> long record -> out-of-fold counts
    stream_hours: dict[str, float] = field(default_factory=dict)  # long record -> hours

    def stream_summary(self, row: str, n_boot: int = 2000) -> dict[str, Any] | None:
        """A row's out-of-fold figures on the long records: VT episodes missed, false alarms and
        false alarms per monitored hour (95% record bootstrap)."""
        per = self.streams.get(row)
        if not per:
            return None
        names = list(per)
        total = sum(per.values(), Counts())
        hours = sum(self.stream_hours[n] for n in names)
        rate = lambda pick: sum(per[n].fp for n in pick) / max(sum(self.stream_hours[n] for n in pick), 1e-9)  # noqa: E731
        lo, hi = bootstrap_interval(names, rate, n=n_boot)
        return {"records": len(names), "hours": round(hours, 3), "episodes": total.tp + total.fn, "missed": total.fn,
                "false": total.fp, "false_per_hour": round(total.fp / hours, 3), "false_per_hour_ci95": [round(lo, 3), round(hi, 3)]}

    def counts(self, row: str, names: Sequence[str] | None = None) -> Counts:
        names = list(self.truth) if names is None else names
        return Counts.of((self.truth[n], self.rows[row][n]) for n in names)

    def summary(self, n_boot: int = 2000) -> dict[str, Any]:
        out = {}
        names = list(self.truth)
        for row in self.rows:
            c = self.counts(row)
            d = c.to_dict()
            for stat in ("tpr", "tnr", "score"):
                lo, hi = bootstrap_interval(names, lambda pick, s=stat, r=row: getattr(self.counts(r, pick), s), n=n_boot)
                d[f"{stat}_ci95"] = [round(lo, 4), round(hi, 4)]
            if row in self.chosen:
                d["limits_per_fold"] = self.chosen[row]
            if row in self.shipped:
                d["limits_all_records"] = self.shipped[row]
            st = self.stream_summary(row, n_boot)
            if st is not None:
                d["streams"] = st
            out[row] = d
        return out

    def format(self, n_boot: int = 2000) -> str:
        s = self.summary(n_boot)
        head = f"{'detector':<44} {'TPR':>17} {'TNR':>17} {'score':>17} {'TP':>4} {'FN':>3} {'FP':>4} {'TN':>4}"
        lines = [head, "-" * len(head)]
        for row, d in s.items():
            cell = lambda k: f"{d[k]:.3f} [{d[k + '_ci95'][0]:.2f}-{d[k + '_ci95'][1]:.2f}]"  # noqa: E731
            lines.append(f"{row:<44} {cell('tpr'):>17} {cell('tnr'):>17} {cell('score'):>17} {d['tp']:>4} {d['fn']:>3} {d['fp']:>4} {d['tn']:>4}")
        lines.append(f"({len(self.truth)} alarms, {sum(self.truth.values())} true; out-of-fold rows: limits chosen by challenge score "
                     f"on the training records of {self.k} record-grouped folds; [95% record bootstrap])")
        streamed = [(row, d["streams"]) for row, d in s.items() if "streams" in d]
        if streamed:
            n, h = streamed[0][1]["records"], streamed[0][1]["hours"]
            head = f"{'long records (' + str(n) + ', ' + format(h, '.1f') + ' h), VT':<44} {'episodes':>9} {'missed':>7} {'false':>6} {'false/h [95% CI]':>22}"
            lines += ["", head, "-" * len(head)]
            for row, st in streamed:
                ci = st["false_per_hour_ci95"]
                lines.append(f"{row:<44} {st['episodes']:>9} {st['missed']:>7} {st['false']:>6} "
                             f"{st['false_per_hour']:>9.2f} [{ci[0]:.2f}-{ci[1]:.2f}]")
            lines.append("(the long records take part in each fold's selection and are held out with their fold)")
        return "\n".join(lines)


ROW_ALL = "raise every alarm"
ROW_PREV = "previous detector (beat rule alone)"
ROW_ECG = "evidence, ECG only (out of fold)"
ROW_PULSE = "evidence, ECG + pulse (out of fold)"
ROW_SHIPPED_NO_PULSE = "shipped limits, no pulse channel (oof)"


def cross_validated(logs: dict[str, RecordLog], k: int = 5, seed: int = 0,
                    streams: dict[str, StreamLog] | None = None) -> CvReport:
    """Out-of-fold rows. The alarms are dealt over ``k`` folds by truth; ``streams`` (long records)
    over their own ``k`` folds, paired by index, so the alarms' folds are the same with or without
    them. Each fold's limits are selected on its training alarms and long records together."""
    streams = streams or {}
    truth = {n: rl.truth for n, rl in logs.items()}
    rows: dict[str, dict[str, bool]] = {ROW_ALL: {n: True for n in logs}, ROW_PREV: {n: replay(rl, always)[0] for n, rl in logs.items()}}
    report = CvReport(truth, rows, k=k, stream_hours={n: sl.n_samples / sl.fs / 3600.0 for n, sl in streams.items()})
    folds = record_folds(list(logs), k, seed, truth)
    sfolds = record_folds(list(streams), k, seed) if streams else [Fold(i, (), ()) for i in range(k)]
    if streams:
        report.streams[ROW_PREV] = {n: stream_counts(sl, always) for n, sl in streams.items()}
    trains = [({n: logs[n] for n in f.train}, {n: streams[n] for n in sf.train}) for f, sf in zip(folds, sfolds)]

    def held_out(row: str, chosen: list[EvidenceLimits], use_pulse: bool) -> None:
        """``row``'s out-of-fold decisions on the alarms and counts on the long records: each judged
        with the limits its fold's training records chose."""
        rows[row] = _held_out(logs, folds, chosen, lambda rl, lim: replay(rl, decider(lim, use_pulse))[0])
        if streams:
            report.streams[row] = _held_out(streams, sfolds, chosen, lambda sl, lim: stream_counts(sl, decider(lim, use_pulse)))

    ecg_chosen = [select(tl, False, ts) for tl, ts in trains]
    ecg_all = select(logs, False, streams)
    # with a pulse, the no-pulse continuity limit is the ECG-only selection's on the same records
    # (``select``): the one just made, not selected a second time
    pulse_chosen = [select(tl, True, ts, e.ecg_continuity_no_pulse) for (tl, ts), e in zip(trains, ecg_chosen)]
    pulse_all = select(logs, True, streams, ecg_all.ecg_continuity_no_pulse)
    for row, use_pulse, chosen, shipped in ((ROW_ECG, False, ecg_chosen, ecg_all), (ROW_PULSE, True, pulse_chosen, pulse_all)):
        held_out(row, chosen, use_pulse)
        report.chosen[row] = [_limits_dict(c, use_pulse) for c in chosen]
        report.shipped[row] = _limits_dict(shipped, use_pulse)
    # what a source without a pulse channel gets: each fold's limits selected with a pulse (they
    # hold the no-pulse continuity limit, selected inside the same fold), judged on the ECG alone.
    # The same folds and limits: no second selection
    held_out(ROW_SHIPPED_NO_PULSE, pulse_chosen, False)
    report.chosen[ROW_SHIPPED_NO_PULSE] = report.chosen[ROW_PULSE]
    return report


def _held_out(items: dict[str, Any], folds: list[Fold], chosen: list[EvidenceLimits],
              judge_one: Callable[[Any, EvidenceLimits], Any]) -> dict[str, Any]:
    held = {n: judge_one(items[n], lim) for f, lim in zip(folds, chosen) for n in f.test}
    return {n: held[n] for n in items}


def seed_spread(logs: dict[str, RecordLog], seeds: Sequence[int], k: int = 5,
                reports: dict[int, CvReport] | None = None, streams: dict[str, StreamLog] | None = None) -> dict[str, dict[str, Any]]:
    """The out-of-fold rows over several fold assignments (``seeds``): mean, min and max of TPR,
    TNR and score per row. With 44 true alarms one alarm moving across one fold's selection moves
    a single assignment's figures by a few hundredths, so a change is judged on the mean; the
    bootstrap interval of one assignment covers the records drawn, not how they were split.
    ``reports`` holds assignments already computed (by seed)."""
    reports = dict(reports or {})
    for s in seeds:
        if s not in reports:
            reports[s] = cross_validated(logs, k=k, seed=s, streams=streams)
    out: dict[str, dict[str, Any]] = {}
    for row in (ROW_ECG, ROW_PULSE, ROW_SHIPPED_NO_PULSE):
        counts = [reports[s].counts(row) for s in seeds]
        d: dict[str, Any] = {"seeds": list(seeds)}
        for stat in ("tpr", "tnr", "score"):
            v = [getattr(c, stat) for c in counts]
            d[stat] = {"mean": round(sum(v) / len(v), 4), "min": round(min(v), 4), "max": round(max(v), 4)}
        if streams:
            v = [reports[s].stream_summary(row, n_boot=0)["false_per_hour"] for s in seeds]
            d["stream_false_per_hour"] = {"mean": round(sum(v) / len(v), 3), "min": round(min(v), 3), "max": round(max(v), 3)}
        out[row] = d
    return out


def format_spread(spread: dict[str, dict[str, Any]]) -> str:
    seeds = next(iter(spread.values()))["seeds"]
    head = f"{'over ' + str(len(seeds)) + ' fold assignments (seeds ' + ', '.join(map(str, seeds)) + ')':<46} {'TPR mean [min-max]':>19} {'TNR mean [min-max]':>19} {'score mean [min-max]':>21}"
    streams = all("stream_false_per_hour" in d for d in spread.values())
    if streams:
        head += f" {'long records false/h':>21}"
    lines = [head, "-" * len(head)]
    for row, d in spread.items():
        cell = lambda k: f"{d[k]['mean']:.3f} [{d[k]['min']:.2f}-{d[k]['max']:.2f}]"  # noqa: E731
        line = f"{row:<46} {cell('tpr'):>19} {cell('tnr'):>19} {cell('score'):>21}"
        if streams:
            f = d["stream_false_per_hour"]
            line += f" {f['mean']:>8.2f} [{f['min']:.2f}-{f['max']:.2f}]"
        lines.append(line)
    return "\n".join(lines)


def _limits_dict(lim: EvidenceLimits, use_pulse: bool = True) -> dict:
    """The limits a selection chose: all of them with a pulse (the shipped set), the ECG ones without."""
    drop = () if use_pulse else ("ecg_continuity", "pulse_continuity", "min_pulses")
    return {k: v for k, v in dataclasses.asdict(lim).items() if k != "enabled" and k not in drop}
