"""QRS detection scored against reference beat annotations, beside wfdb's ``xqrs``.

Matching is ``wfdb.processing.compare_annotations`` with a 150 ms window (a detection within
150 ms of a reference beat is a true positive; each pairs at most once). Reference beats are
the ``.atr`` *beat* symbols only (``BEAT_SYMBOLS``: PhysioNet's beat codes; rhythm, noise and
ventricular-flutter-wave ``!`` annotations are not beats). Following ANSI/AAMI EC57, detections
inside ventricular flutter/fibrillation episodes (``[`` ... ``]``) are not scored; the numbers
without that exclusion are reported too ("raw").

Our detector is streamed through ``StreamAnalyzer`` in blocks (1 s by default), exactly as the
appliance runs it; ``xqrs`` runs offline on the first lead, as wfdb documents it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from edge_ecg.dsp.analyzer import StreamAnalyzer
from edge_ecg.dsp.config import AnalyzerConfig
from edge_ecg.dsp.types import Beat, RhythmEvent
from edge_ecg.errors import InputError
from edge_ecg.records import Record, read_record

# PhysioNet beat annotation codes (https://archive.physionet.org/physiobank/annotations.shtml)
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")
WINDOW_S = 0.15
EDGE_END_S = 0.30  # the decision-delay bound: beats this close to the end cannot be decided causally


@dataclass
class Score:
    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def se(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def ppv(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    def __iadd__(self, other: "Score") -> "Score":
        self.tp += other.tp
        self.fn += other.fn
        self.fp += other.fp
        return self


@dataclass
class RecordResult:
    name: str
    n_ref: int
    ours: Score
    ours_raw: Score
    xqrs: Score | None = None
    xqrs_raw: Score | None = None
    max_delay_s: float = 0.0
    n_ventricular: int = 0
    ventricular: Score | None = None  # beat classification: reference V/E beats labelled ventricular


@dataclass
class QrsReport:
    records: list[RecordResult] = field(default_factory=list)
    block_s: float = 1.0

    def gross(self, which: str = "ours") -> Score:
        total = Score()
        for r in self.records:
            s = getattr(r, which)
            if s is not None:
                total += s
        return total

    def format(self) -> str:
        has_x = any(r.xqrs is not None for r in self.records)
        head = f"{'record':>8} {'beats':>6} | {'ours Se':>8} {'ours +P':>8} {'FN':>4} {'FP':>4}"
        if has_x:
            head += f" | {'xqrs Se':>8} {'xqrs +P':>8} {'FN':>4} {'FP':>4}"
        lines = [head, "-" * len(head)]
        for r in self.records:
            line = f"{r.name:>8} {r.n_ref:>6} | {100 * r.ours.se:8.2f} {100 * r.ours.ppv:8.2f} {r.ours.fn:>4} {r.ours.fp:>4}"
            if r.xqrs is not None:
                line += f" | {100 * r.xqrs.se:8.2f} {100 * r.xqrs.ppv:8.2f} {r.xqrs.fn:>4} {r.xqrs.fp:>4}"
            lines.append(line)
        lines.append("-" * len(head))
        for label, suffix in (("gross", ""), ("raw", "_raw")):
            g = self.gross("ours" + suffix)
            line = f"{label:>8} {sum(r.n_ref for r in self.records):>6} | {100 * g.se:8.3f} {100 * g.ppv:8.3f} {g.fn:>4} {g.fp:>4}"
            if has_x:
                x = self.gross("xqrs" + suffix)
                line += f" | {100 * x.se:8.3f} {100 * x.ppv:8.3f} {x.fn:>4} {x.fp:>4}"
            lines.append(line)
        if any(r.ventricular is not None for r in self.records):
            v = self.gross("ventricular")
            lines.append(f"ventricular beats (EC57 VEB, matched beats): Se {100 * v.se:.2f}  +P {100 * v.ppv:.2f}  "
                         f"(TP {v.tp}, FN {v.fn}, FP {v.fp})")
        lines.append(
            f"(gross: EC57, ventricular flutter episodes excluded; raw: nothing excluded; 150 ms window; "
            f"ours streamed in {self.block_s:g} s blocks; max decision delay "
            f"{max((r.max_delay_s for r in self.records), default=0):.3f} s)")
        return "\n".join(lines)


def stream_record(
    record: Record,
    block_s: float = 1.0,
    config: AnalyzerConfig | None = None,
    stop: int | None = None,
    on_update: Callable | None = None,
    start: int = 0,
    analyzer: StreamAnalyzer | None = None,
) -> tuple[list[Beat], list[RhythmEvent]]:
    """Feed samples [start, stop) of a record through a fresh ``StreamAnalyzer`` (or ``analyzer``)
    in blocks of ``block_s`` seconds, as ``ReplaySource`` yields them to the daemon: NaN samples
    flagged lead-off, the record's pulse waves (PLETH/ABP) beside the leads. Indices count from
    ``start``.
    """
    from edge_ecg.stream.replay_source import ReplaySource

    an = analyzer or StreamAnalyzer(record.fs, record.leads, config)
    n = record.n_samples if stop is None else min(stop, record.n_samples)
    beats: list[Beat] = []
    events: list[RhythmEvent] = []
    src = ReplaySource(record, speed=0, start_s=start / record.fs, stop_s=n / record.fs, block_s=block_s)
    for blk in src:
        up = an.process(blk)
        beats.extend(up.beats)
        events.extend(up.events)
        if on_update is not None:
            on_update(up)
    return beats, events


def reference(path: str | Path, annotator: str = "atr") -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Reference beat samples, their symbols, and the [ ... ] flutter/fibrillation spans."""
    import wfdb

    path = Path(path)
    try:
        ann = wfdb.rdann(str(path.with_suffix("")), annotator)
    except Exception as exc:
        raise InputError(path.with_suffix("." + annotator), f"cannot read reference annotations: {exc}") from exc
    sym = np.array(ann.symbol)
    samp = np.asarray(ann.sample, dtype=np.int64)
    is_beat = np.isin(sym, list(BEAT_SYMBOLS))
    spans, open_at = [], None
    for s, y in zip(samp, sym):
        if y == "[":
            open_at = int(s)
        elif y == "]" and open_at is not None:
            spans.append((open_at, int(s)))
            open_at = None
    if open_at is not None:
        spans.append((open_at, int(samp[-1]) + 1))
    return samp[is_beat], sym[is_beat], spans


def score(ref: np.ndarray, test: np.ndarray, fs: float, exclude: Sequence[tuple[int, int]] = (), n_samples: int | None = None) -> Score:
    """Beat-by-beat matching with ``wfdb.processing.compare_annotations`` (150 ms window).

    With ``n_samples``, beats (reference and detected alike) in the record's first 150 ms (a
    complex cut by the start, which references do not annotate) and last 300 ms (a causal detector
    decides a beat up to 300 ms after its R peak, so it cannot decide those before the record
    ends) are not scored, for every detector the same.
    """
    from wfdb import processing

    ref = np.asarray(ref, dtype=np.int64)
    test = np.sort(np.asarray(test, dtype=np.int64))
    if n_samples is not None:
        lo, hi = int(WINDOW_S * fs), int(n_samples) - int(round(EDGE_END_S * fs))
        ref = ref[(ref >= lo) & (ref < hi)]
        test = test[(test >= lo) & (test < hi)]
    for a, b in exclude:
        ref = ref[(ref < a) | (ref > b)]
        test = test[(test < a) | (test > b)]
    if len(test) == 0 or len(ref) == 0:
        return Score(0, len(ref), len(test))
    c = processing.compare_annotations(ref, test, int(WINDOW_S * fs))
    return Score(int(c.tp), int(c.fn), int(c.fp))


def ventricular_score(ref: np.ndarray, symbols: Sequence[str], beats: Sequence[Beat], fs: float,
                      exclude: Sequence[tuple[int, int]] = (), n_samples: int | None = None) -> Score:
    """Ventricular beat classification (EC57's VEB sensitivity and +P) over the detected beats that
    match a reference beat (150 ms): tp = a V/E beat labelled ventricular, fn = a V/E beat labelled
    otherwise, fp = any other beat labelled ventricular. Beats the detector missed or added count in
    the QRS score, not here; the scored span is ``score``'s."""
    ref = np.asarray(ref, dtype=np.int64)
    sym = np.asarray(list(symbols))
    keep = np.ones(ref.size, dtype=bool)
    if n_samples is not None:
        keep &= (ref >= int(WINDOW_S * fs)) & (ref < int(n_samples) - int(round(EDGE_END_S * fs)))
    for a, b in exclude:
        keep &= (ref < a) | (ref > b)
    ref, sym = ref[keep], sym[keep]
    out = Score()
    if ref.size == 0:
        return out
    w = int(WINDOW_S * fs)
    for b in beats:
        j = int(np.searchsorted(ref, b.index))
        near = [k for k in (j - 1, j) if 0 <= k < ref.size and abs(int(ref[k]) - b.index) <= w]
        if not near:
            continue
        k = min(near, key=lambda k: abs(int(ref[k]) - b.index))
        is_v = sym[k] in ("V", "E")
        out.tp += is_v and b.ventricular
        out.fn += is_v and not b.ventricular
        out.fp += (not is_v) and b.ventricular
    return out


def xqrs_detect(record: Record, lead: int = 0) -> np.ndarray:
    """wfdb's ``XQRS`` on one lead (in mV, as wfdb expects), offline over the whole record."""
    from wfdb import processing

    logging.getLogger("wfdb").setLevel(logging.WARNING)
    x = np.nan_to_num(record.signals[:, lead].astype(np.float64) / 1000.0)
    det = processing.XQRS(sig=x, fs=record.fs)
    det.detect(verbose=False)
    return np.asarray(det.qrs_inds, dtype=np.int64)


def find_wfdb(folder: Path, names: Sequence[str] | None = None, annotator: str = "atr") -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    heads = sorted(folder.glob("*.hea"))
    if names:
        heads = [h for h in heads if h.stem in set(names)]
    heads = [h for h in heads if h.with_suffix("." + annotator).is_file()]
    if not heads:
        raise InputError(folder, f"no WFDB records with .{annotator} reference annotations")
    return heads


def evaluate_qrs(
    folder: str | Path,
    block_s: float = 1.0,
    with_xqrs: bool = True,
    names: Sequence[str] | None = None,
    config: AnalyzerConfig | None = None,
    progress: Callable[[RecordResult], None] | None = None,
    annotator: str = "atr",
) -> QrsReport:
    """Score the streaming detector (and ``xqrs``) on every annotated record of ``folder``.

    ``annotator`` names the reference annotation file (``atr`` for MIT-BIH; ``ii`` etc. for LUDB,
    whose per-lead files mark each QRS with ``N`` but only over part of each record: there, only
    the annotated span (from 150 ms before its first to 150 ms after its last beat) is scored, for
    both detectors, and xqrs runs on the annotated lead).
    """
    from edge_ecg.records.leads import canonical_lead

    report = QrsReport(block_s=block_s)
    for hea in find_wfdb(Path(folder), names, annotator):
        rec = read_record(hea)
        ref, sym, spans = reference(hea, annotator)
        beats, _ = stream_record(rec, block_s, config)
        idx = np.array([b.index for b in beats], dtype=np.int64)
        delay = max(((b.decided_at - b.index) / rec.fs for b in beats), default=0.0)
        n = rec.n_samples
        xlead = 0
        if annotator != "atr" and ref.size:
            w = int(WINDOW_S * rec.fs)
            spans = list(spans) + [(-(10**9), int(ref[0]) - w - 1), (int(ref[-1]) + w + 1, 10**12)]
            lead = canonical_lead(annotator)
            xlead = rec.leads.index(lead) if lead in rec.leads else 0
        res = RecordResult(
            name=hea.stem, n_ref=len(ref), ours=score(ref, idx, rec.fs, spans, n), ours_raw=score(ref, idx, rec.fs, n_samples=n),
            max_delay_s=delay, n_ventricular=sum(b.ventricular for b in beats),
            ventricular=ventricular_score(ref, sym, beats, rec.fs, spans, n) if annotator == "atr" else None)
        if with_xqrs:
            xi = xqrs_detect(rec, xlead)
            res.xqrs, res.xqrs_raw = score(ref, xi, rec.fs, spans, n), score(ref, xi, rec.fs, n_samples=n)
        report.records.append(res)
        if progress:
            progress(res)
    return report


# -- noise stress -------------------------------------------------------------------------------
NOISE_STRESS_FS = 360.0  # the 118e* excerpts (see ../shared/ecg/README.md)


def read_csv_column(path: Path) -> np.ndarray:
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1)
    except Exception as exc:
        raise InputError(path, f"expected one number per line: {exc}") from exc


def evaluate_noise_stress(
    folder: str | Path, block_s: float = 1.0, config: AnalyzerConfig | None = None, with_xqrs: bool = False
) -> list[tuple]:
    """(record, SNR dB, our score[, xqrs score]) per ``118eNN.csv`` with its ``118eNN_ann.csv`` R peaks."""
    folder = Path(folder)
    out = []
    files = sorted(folder.glob("118e*.csv"))
    files = [f for f in files if not f.stem.endswith("_ann")]
    if not files:
        raise InputError(folder, "no 118eNN.csv noise-stress excerpts")
    for f in sorted(files, key=lambda p: -int(p.stem[4:])):
        ann = f.with_name(f.stem + "_ann.csv")
        if not ann.is_file():
            raise InputError(ann, "missing reference R peaks for " + f.name)
        x = read_csv_column(f) * 1000.0  # mV -> uV
        ref = read_csv_column(ann).astype(np.int64)
        rec = Record(signals=x[:, None].astype(np.float32), fs=NOISE_STRESS_FS, leads=("II",), name=f.stem, source=str(f))
        beats, _ = stream_record(rec, block_s, config)
        n = rec.n_samples
        row = (f.stem, int(f.stem[4:]), score(ref, [b.index for b in beats], rec.fs, n_samples=n))
        if with_xqrs:
            row += (score(ref, xqrs_detect(rec), rec.fs, n_samples=n),)
        out.append(row)
    return out


def format_noise_stress(rows: list[tuple]) -> str:
    x = any(len(r) > 3 for r in rows)
    head = f"{'record':>8} {'SNR dB':>6} | {'ours Se':>7} {'ours +P':>7} {'FN':>4} {'FP':>4}"
    lines = [head + (f" | {'xqrs Se':>7} {'xqrs +P':>7} {'FN':>4} {'FP':>4}" if x else "")]
    for row in rows:
        name, db, s = row[:3]
        line = f"{name:>8} {db:>6} | {100 * s.se:7.2f} {100 * s.ppv:7.2f} {s.fn:>4} {s.fp:>4}"
        if len(row) > 3:
            q = row[3]
            line += f" | {100 * q.se:7.2f} {100 * q.ppv:7.2f} {q.fn:>4} {q.fp:>4}"
        lines.append(line)
    return "\n".join(lines)
