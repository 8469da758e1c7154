"""Evidence for and against a suspected ventricular run before it becomes an alarm.

The beat rule (``rhythm.py``: 5 ventricular beats over 100 bpm) finds every VT and also most of
what bedside monitors alarm on falsely: motion artifact, a loose electrode, fast wide beats that are
the patient's usual ones. Five independent checks judge a candidate run, each a question a
clinician would ask of the strip:

1. **Can any lead be believed?** (``sqi.py``) At least one usable lead (not off, flat, clipped,
   nor suddenly many times larger than before), whose two different QRS detectors agree (bSQI >=
   ``min_bsqi``; at 0, any usable lead) over the run. If none, the "run" is noise:
   the noise technical condition covers it, not a VT alarm. When no lead showed a regular rhythm
   before the run (check 2 has nothing to follow: noise or an irregular rhythm before it), the bar
   is higher (``min_bsqi_no_rhythm``): a VT that starts from a visible rhythm is seen to replace
   it; one that emerges from an unreadable stretch must at least be clearly readable itself.
2. **Do the patient's own beats go on underneath?** Per lead, the patient's running template of
   normal beats is matched against the signal over the run; if in some lead normal complexes keep
   coming at the rhythm before the run (``continuity.py`` >= ``ecg_continuity``), the run is
   artifact on the other lead(s). Where the pulse cannot speak (no pulse channel, or no regular
   pulse before the run) this is the only check that can see the rhythm go on, and its limit is
   the one chosen without a pulse (``ecg_continuity_no_pulse``, selected on ECG evidence alone).
3. **Does the pulse go on?** (``pulse.py``) When the source sends PLETH or ABP: a pulse that keeps
   its rate and size through the run (continuity >= ``pulse_continuity`` over at least
   ``min_pulses`` pulses due) means the heart did not change rhythm. Until that many are due, a
   run the pulse has gone on through so far waits, even where the ECG reads the old rhythm as
   gone: on the ECG that may be the artifact itself, which the pulse channel does not see.
4. **Do the run's beats look alike?** A ventricular rhythm repeats one focus's complex (or, in
   bidirectional VT, alternates two): each beat of the run is compared with the one before and the
   one before that (normalised correlation, aligned within 60 ms); noise and motion detected as
   beats take a new shape each time. A run whose median similarity, in its best usable lead, is
   below ``min_run_similarity`` is withheld.
5. **Is it VT, or atrial fibrillation conducted aberrantly?** While the AF condition is on, wide
   beats in the AF's irregular rhythm (rate-related bundle branch block) look like a ventricular
   run to the beat rule; an irregularly irregular wide-complex tachycardia is AF with aberrancy
   until shown otherwise, and VT is regular. A run whose last intervals vary more than
   ``af_rr_cv`` (coefficient of variation) is withheld while AF is on; a VT in AF becomes regular
   and is alarmed at the first beat where it is.

A run that fails a check is withheld, not forgotten: it is judged again at each new beat while it
lasts, so a true VT whose evidence takes a few seconds to build is still alarmed then (within the
10 s of IEC 60601-2-27). A run that ends while the checks are still waiting for the rhythm
underneath to be due (a short run: no check could decide yet) is alarmed when it ends
(``rhythm.py``), saying what was waited for (``waiting_for``); before, such runs were never alarmed, and 5-8 beat VT runs were missed. The
eight limits (``EvidenceLimits``) are the only tuned numbers (record-grouped cross-validation on the
CinC 2015 VT alarms, ``edge-ecg eval alarms``); everything else is fixed physiology. The same pulse
check withholds ventricular fibrillation when the pulse goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge_ecg.dsp.config import EvidenceLimits
from edge_ecg.dsp.continuity import continuity
from edge_ecg.dsp.morphology import lagged_corr
from edge_ecg.dsp.pulse import PulseEvidence
from edge_ecg.dsp.sqi import LeadSqi

WAITING = "waiting for the rhythm underneath to be due"  # judge()'s reason while no check can speak yet
_MATCH_CORR = 0.85  # a complex is the patient's normal beat when it correlates this well with the template
_MATCH_SIZE = (0.5, 2.0)  # ... and its size is within this range of the template's
# a normal beat up to half a period late still keeps the rhythm (``continuity``'s ``late``): no
# missed beat fits in that gap, and respiratory sinus arrhythmia lengthens single intervals by 30%
# and more (MIT-BIH 115: 0.85-1.14 s around a 0.88 s median), which read as the rhythm lost at 0.25
_ECG_LATE = 0.5


@dataclass(frozen=True)
class RunEvidence:
    """What the checks measured for one candidate run, for the decision and the event log."""

    sqi: tuple[LeadSqi, ...] = ()
    usable: tuple[bool, ...] = ()  # per lead: not off, flat, clipped, nor implausibly larger than before
    ecg_continuity: tuple[float | None, ...] = ()  # per lead
    pulse: tuple[PulseEvidence, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def features(self) -> dict[str, Any]:
        """The numbers the decision uses (and the cross-validation caches)."""
        b = [s.bsqi for s, u in zip(self.sqi, self.usable) if u]
        e = [c for c in self.ecg_continuity if c is not None and c == c]
        p = [(q.continuity, q.due or 0) for q in self.pulse if q.continuity is not None]
        best = max(p) if p else (None, None)  # the channel whose pulse went on best (most pulses due on a tie)
        return {"bsqi": max(b) if b else 0.0, "usable_leads": sum(bool(u) for u in self.usable),
                "ecg_continuity": max(e) if e else None, "pulse_continuity": best[0],
                "pulse_due": best[1],
                "ecg_pending": any(c is not None and c != c for c in self.ecg_continuity),
                "pulse_pending": any(q.pending for q in self.pulse), **self.extra}

    def to_dict(self) -> dict[str, Any]:
        return {"leads": [s.to_dict() | {"usable": u, "normal_continuity": None if c is None or c != c else round(c, 3)}
                          for s, u, c in zip(self.sqi, self.usable, self.ecg_continuity)],
                "pulse": [q.to_dict() for q in self.pulse], **self.extra}


def judge(features: dict[str, Any], limits: EvidenceLimits, use_pulse: bool = True) -> tuple[bool, str]:
    """Confirm a run, or say why it is withheld.

    Wherever the pulse cannot speak for this run, the ECG continuity veto is
    ``ecg_continuity_no_pulse``, the limit the same procedure selects on ECG evidence alone: a
    source with no pulsatile channel (``use_pulse`` False), and a run with no regular pulse before
    it to follow (a probe off the finger, a damped line: no pulse continuity, none pending). Its
    own limit is right there because check 2 is then the only check that can see the patient's
    rhythm go on (the selection chose 0.5 for it until check 4 took over much of that work)."""
    if not limits.enabled:
        return True, "evidence checks off"
    if features.get("usable_leads") == 0:
        # every lead off, flat, on its rails or suddenly many times larger: nothing to believe, at
        # any bSQI bar (logs from before the count was kept carry none: judged as then)
        return False, "no lead usable over the run (off, flat, clipped or suddenly many times larger): artifact"
    if features["bsqi"] < limits.min_bsqi:
        return False, f"no lead trustworthy over the run (best bSQI {features['bsqi']:.2f} < {limits.min_bsqi:g})"
    sim = features.get("run_similarity")
    if sim is not None and sim < limits.min_run_similarity:
        return False, f"the run's beats do not look alike (similarity {sim:.2f} < {limits.min_run_similarity:g}): noise, not a ventricular rhythm"
    cv = features.get("rr_cv")
    if features.get("af") and cv is not None and cv > limits.af_rr_cv:
        return False, (f"an irregular run while atrial fibrillation is on (RR variation {cv:.2f} > {limits.af_rr_cv:g}): "
                       f"aberrant conduction, not VT")
    ec = features.get("ecg_continuity")
    pc = features.get("pulse_continuity")
    pulse_speaks = use_pulse and (pc is not None or bool(features.get("pulse_pending")))
    ec_limit = limits.ecg_continuity if pulse_speaks else limits.ecg_continuity_no_pulse
    if ec is None and not features.get("ecg_pending") and features["bsqi"] < limits.min_bsqi_no_rhythm:
        # nothing to see the old rhythm stop in: the run must at least be clearly readable
        return False, (f"no lead showed a regular rhythm before the run, and none is clearly readable over it "
                       f"(best bSQI {features['bsqi']:.2f} < {limits.min_bsqi_no_rhythm:g})")
    if ec is not None and ec >= ec_limit:
        return False, f"normal beats go on underneath in one lead (continuity {ec:.2f})"
    if _pulse_early(features, limits, use_pulse):
        # every pulse due so far has come, but fewer than ``min_pulses`` were due: wait for them
        # even where the ECG says the old rhythm is gone, since on the ECG that may be the
        # artifact itself, which the pulse channel does not see
        return False, WAITING
    if use_pulse and pc is not None and pc >= limits.pulse_continuity:
        due = features.get("pulse_due")
        over = "" if due is None else f" over {due} pulses"
        return False, f"the pulse goes on unchanged (continuity {pc:.2f}{over})"
    # a check that can speak within a beat or two of the old rhythm is waited for (bounded by two
    # periods of that rhythm), unless another check has already shown the rhythm is gone
    gone = (ec is not None and ec < ec_limit) or (use_pulse and pc is not None and pc < limits.pulse_continuity)
    if not gone and (features.get("ecg_pending") and ec_limit <= 1.0
                     or use_pulse and features.get("pulse_pending") and limits.pulse_continuity <= 1.0):
        return False, WAITING
    return True, "confirmed"


def _pulse_early(features: dict[str, Any], limits: EvidenceLimits, use_pulse: bool) -> bool:
    """The pulse has come at every one due so far, but fewer than ``min_pulses`` were due: it has
    not yet shown it goes on (logs from before ``pulse_due`` was measured carry none: judged as then)."""
    pc, due = features.get("pulse_continuity"), features.get("pulse_due")
    return bool(use_pulse and pc is not None and pc >= limits.pulse_continuity and due is not None and due < limits.min_pulses)


def waiting_for(features: dict[str, Any], limits: EvidenceLimits, use_pulse: bool = True) -> str:
    """What a ``WAITING`` judgement waits for, in words: a run that ends while waiting is alarmed
    (``rhythm.py``), and its log line must say what had been seen, not that nothing had. A pulse
    that came at every one due, but at fewer than ``min_pulses``, leaned towards artifact without
    being allowed to veto."""
    if _pulse_early(features, limits, use_pulse):
        return f"more pulses (the pulse came at each of the {features['pulse_due']} due, {limits.min_pulses} needed to veto)"
    parts = (["the next normal beat in a lead"] if features.get("ecg_pending") else []) + \
        (["the next pulse"] if use_pulse and features.get("pulse_pending") else [])
    return " and ".join(parts) or "the rhythm underneath"


_SIMILAR_PRE_S, _SIMILAR_POST_S, _SIMILAR_LAG_S = 0.08, 0.12, 0.06  # the complex compared, and how far it may shift


def run_similarity(x: np.ndarray, beats: Sequence[int], usable: Sequence[bool], fs: float) -> float | None:
    """How alike a run's beats are: per lead, each beat's best correlation with the beat before it
    or the one before that (bidirectional VT alternates two complexes), aligned within 60 ms; the
    median over the run's beats; the best usable lead. ``x`` holds the filtered samples, ``beats``
    the run's R-peak rows in it. None with fewer than three whole beats or no usable lead."""
    pre, post, lag = (int(round(v * fs)) for v in (_SIMILAR_PRE_S, _SIMILAR_POST_S, _SIMILAR_LAG_S))
    m = pre + post
    rows = [int(r) for r in beats if r - pre - lag >= 0 and r + post + lag <= x.shape[0]]
    leads = [j for j, u in enumerate(usable) if u]
    if len(rows) < 3 or not leads:
        return None
    segs = np.stack([x[r - pre - lag : r + post + lag][:, leads] for r in rows])  # (beats, m + 2 lag, leads)

    def best(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per lead: the best correlation of beat ``a``'s complex with ``b`` shifted within +-lag."""
        return lagged_corr(sliding_window_view(b, m, axis=0), a[lag : lag + m]).max(axis=0)

    per_beat = []
    for i in range(1, len(rows)):
        c = best(segs[i - 1], segs[i])
        if i >= 2:
            c = np.maximum(c, best(segs[i - 2], segs[i]))
        per_beat.append(c)
    return round(float(np.median(np.asarray(per_beat), axis=0).max()), 3)


def template_matches(x: np.ndarray, template: np.ndarray, r_offset: int, fs: float, t0: float) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) and sizes (peak-to-peak) of complexes in one lead ``x`` that match ``template``.

    Normalised cross-correlation >= ``_MATCH_CORR`` at a local maximum (250 ms apart), size within
    ``_MATCH_SIZE`` of the template's; ``r_offset`` is the R peak's row in the template and ``t0``
    the stream time of ``x[0]``.
    """
    m = template.shape[0]
    if x.shape[0] < m + 2 or m < 4:
        return np.zeros(0), np.zeros(0)
    tc = template - template.mean()
    tn = float(np.sqrt((tc * tc).sum()))
    if tn <= 0:
        return np.zeros(0), np.zeros(0)
    w = sliding_window_view(np.asarray(x, dtype=np.float64), m)
    wc = w - w.mean(axis=1, keepdims=True)
    wn = np.sqrt((wc * wc).sum(axis=1))
    ncc = (wc @ tc) / np.maximum(wn * tn, 1e-12)
    from scipy.signal import find_peaks

    pk, _ = find_peaks(ncc, height=_MATCH_CORR, distance=max(int(0.25 * fs), 1))
    if pk.size == 0:
        return np.zeros(0), np.zeros(0)
    size = np.ptp(w[pk], axis=1)
    ref = float(np.ptp(template))
    ok = (size >= _MATCH_SIZE[0] * ref) & (size <= _MATCH_SIZE[1] * ref)
    return t0 + (pk[ok] + r_offset) / fs, size[ok]


def lead_continuity(x: np.ndarray, template: np.ndarray, r_offset: int, fs: float, t0: float,
                    onset: float, now: float) -> float | None:
    """``continuity`` of one lead's template-matched complexes through a run starting at ``onset``.

    The rhythm before is that of the matches before the onset (at least three, so the template
    does describe this lead's beats there, and regular, as for the pulse); the last of them
    anchors the walk. None when the lead shows no such rhythm before the run; NaN while it does but
    too few of its beats were due since to judge.
    """
    t, s = template_matches(x, template, r_offset, fs, t0)
    before = t < onset - 0.05
    tb = t[before]
    if tb.size < 3:
        return None
    ib = np.diff(tb)
    ib = ib[(ib >= 0.3) & (ib <= 2.0)]
    if ib.size < 2:
        return None
    period = float(np.median(ib))
    if float(np.median(np.abs(ib - period))) > 0.15 * period:
        return None  # an irregular rhythm before (atrial fibrillation): "on time" means nothing
    anchor = float(tb[-1])
    if onset - anchor > 2.5 * period:
        return None
    after = t > anchor + 0.125  # not the anchor beat itself
    # a complex is matched once the template's span after its R peak has arrived
    settle = (template.shape[0] - r_offset) / fs
    c = continuity(t[after], s[after], anchor, now, period, float(np.median(s[before][-8:])), settle=settle, late=_ECG_LATE)
    return float("nan") if c is None else c  # NaN: a rhythm to follow, too few beats due yet
