"""Would the streaming VT detector have raised the alarm? Scored on PhysioNet/CinC 2015 records.

Each record holds the 5 min before a bedside monitor's VT alarm at 300 s, labelled true or false
by experts (``alarms.csv``). A record counts as "alarm raised" when our
``ventricular_tachycardia`` condition is active at any moment of the 16 s before 300 s (the
challenge's alarm window): an onset inside it, or an onset before it whose offset does not
precede it. The whole record up to 300 s (plus our decision delay) is streamed in 1 s blocks from
the first sample, so the detector has the warm-up a monitor would have had.

Score (challenge): (TP + TN) / (TP + TN + FP + 5 * FN); missing a true alarm costs five times a
false one.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edge_ecg.dsp.config import AnalyzerConfig
from edge_ecg.errors import InputError
from edge_ecg.eval.qrs_eval import stream_record
from edge_ecg.records import read_record

ALARM_AT_S = 300.0
WINDOW_S = 16.0


@dataclass
class AlarmResult:
    name: str
    truth: bool
    raised: bool
    onset_s: float | None = None
    evidence: dict = field(default_factory=dict)
    raised_at_s: float | None = None  # end of the block whose update raised it (when the daemon would have)


@dataclass
class AlarmReport:
    kind: str
    results: list[AlarmResult] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int, int]:
        tp = sum(r.truth and r.raised for r in self.results)
        fn = sum(r.truth and not r.raised for r in self.results)
        fp = sum((not r.truth) and r.raised for r in self.results)
        tn = sum((not r.truth) and not r.raised for r in self.results)
        return tp, fn, fp, tn

    @property
    def tpr(self) -> float:
        tp, fn, _, _ = self.counts()
        return tp / (tp + fn) if tp + fn else float("nan")

    @property
    def tnr(self) -> float:
        _, _, fp, tn = self.counts()
        return tn / (tn + fp) if tn + fp else float("nan")

    @property
    def score(self) -> float:
        tp, fn, fp, tn = self.counts()
        den = tp + tn + fp + 5 * fn
        return (tp + tn) / den if den else float("nan")

    def format(self, per_record: bool = True) -> str:
        lines = []
        if per_record:
            lines.append(f"{'record':>8} {'truth':>6} {'raised':>6} {'onset s':>8}")
            for r in self.results:
                on = f"{r.onset_s:8.1f}" if r.onset_s is not None else f"{'-':>8}"
                lines.append(f"{r.name:>8} {str(r.truth):>6} {str(r.raised):>6} {on}")
        tp, fn, fp, tn = self.counts()
        lines.append(f"{self.kind}: {len(self.results)} records  TP {tp}  FN {fn}  FP {fp}  TN {tn}")
        lines.append(f"TPR {self.tpr:.3f}  TNR {self.tnr:.3f}  score (TP+TN)/(TP+TN+FP+5FN) {self.score:.3f}")
        return "\n".join(lines)


def read_truth(folder: Path) -> dict[str, bool]:
    path = folder / "alarms.csv"
    if not path.is_file():
        raise InputError(path, "missing (recordname,result per line; 1 = true alarm)")
    truth = {}
    with open(path, newline="") as fh:
        for i, row in enumerate(csv.reader(fh)):
            if i == 0 and row and row[0].strip().lower().startswith("record"):
                continue
            if len(row) < 2 or row[1].strip() not in ("0", "1"):
                raise InputError(f"{path}: line {i + 1}", f"expected 'name,0|1', got {row!r}")
            truth[row[0].strip()] = row[1].strip() == "1"
    return truth


def evaluate_alarms(
    folder: str | Path,
    kind: str = "ventricular_tachycardia",
    block_s: float = 1.0,
    config: AnalyzerConfig | None = None,
    progress: Callable[[AlarmResult], None] | None = None,
    names: list[str] | None = None,
    lead_in_s: float | None = 60.0,
    use_pulse: bool = True,
) -> AlarmReport:
    """Score ``kind`` onsets against ``alarms.csv``; ``lead_in_s=None`` streams each whole record.

    ``use_pulse=False`` judges on the ECG leads alone (the record's PLETH/ABP still stream, unused).
    """
    from edge_ecg.dsp.analyzer import StreamAnalyzer

    folder = Path(folder)
    truth = read_truth(folder)
    report = AlarmReport(kind=kind)
    for name in sorted(truth):
        if names and name not in names:
            continue
        hea = folder / f"{name}.hea"
        if not hea.is_file():
            raise InputError(hea, "listed in alarms.csv but missing")
        rec = read_record(hea)
        fs = rec.fs
        lo, hi = int((ALARM_AT_S - WINDOW_S) * fs), int(ALARM_AT_S * fs)
        # stream to the alarm time plus our decision delay (0.3 s), no further
        stop = hi + int(round(0.3 * fs)) + 1
        first = 0 if lead_in_s is None else max(int((ALARM_AT_S - lead_in_s) * fs), 0)
        an = StreamAnalyzer(fs, rec.leads, config)
        an.use_pulse = use_pulse
        raised_at: dict[int, int] = {}  # onset event index -> stream index when it was raised

        def note(up, raised_at=raised_at, kind=kind, first=first):
            for ev in up.events:
                if ev.kind == kind and ev.state == "onset":
                    raised_at[ev.index + first] = up.stop + first

        _, events = stream_record(rec, block_s, stop=stop, start=first, analyzer=an, on_update=note)
        events = [dataclasses.replace(ev, index=ev.index + first) for ev in events]
        raised, onset, evidence = False, None, {}
        active_since = None
        for ev in events:
            if ev.kind != kind:
                continue
            if ev.state == "onset":
                active_since = ev.index
                if lo <= ev.index <= hi:
                    raised, onset, evidence = True, ev.index / fs, dict(ev.evidence)
                    break
            elif ev.state == "offset":
                if active_since is not None and active_since < lo <= ev.index:
                    raised, onset, evidence = True, active_since / fs, {}
                    break
                active_since = None
        if not raised and active_since is not None and active_since < lo:
            raised, onset = True, active_since / fs
        at = None
        if raised and onset is not None:
            at = raised_at.get(int(round(onset * fs)))
        res = AlarmResult(name, truth[name], raised, onset, evidence, None if at is None else at / fs)
        report.results.append(res)
        if progress:
            progress(res)
    return report
