"""Records for tests: a synthetic sinus signal, MIT-BIH VT runs from annotations, WFDB copies and writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edge_ecg.records import Record


def synthetic(seconds=40.0, fs=360.0, leads=("II", "V1")) -> Record:
    """A plain sinus-like signal (narrow QRS spikes at 75 bpm) for plumbing tests."""
    t = np.arange(int(seconds * fs)) / fs
    beat = np.zeros_like(t)
    for r in np.arange(0.4, seconds, 0.8):
        beat += 1200 * np.exp(-0.5 * ((t - r) / 0.012) ** 2) + 200 * np.exp(-0.5 * ((t - r - 0.25) / 0.05) ** 2)
    sig = np.stack([beat * (1.0 - 0.5 * i / max(1, len(leads) - 1)) for i in range(len(leads))], axis=1).astype(np.float32)
    return Record(signals=sig, fs=fs, leads=leads, name="synthetic")


def vt_runs(atr_path) -> list[tuple[float, float]]:
    """(first V beat of the run, onset) in seconds of annotated ventricular runs meeting the VT
    definition: >= 5 consecutive V beats at > 100 bpm; the onset is the first beat of the first
    5-beat stretch faster than 100 bpm."""
    import wfdb

    ann = wfdb.rdann(str(atr_path), "atr")
    beats = [(s, sym) for s, sym in zip(ann.sample, ann.symbol) if sym in "NLRBAaJSVrFejnE/fQ?"]
    onsets, run = [], []
    for s, sym in beats + [(None, "N")]:
        if sym == "V":
            run.append(s)
            continue
        for i in range(len(run) - 4):
            if np.mean(np.diff(run[i : i + 5])) / ann.fs < 0.6:  # mean RR < 0.6 s = rate > 100 bpm
                onsets.append((run[0] / ann.fs, run[i] / ann.fs))
                break
        run = []
    return onsets


def copy_wfdb(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    dst_dir.mkdir(parents=True, exist_ok=True)
    name = name or src.stem
    text = src.with_suffix(".hea").read_text().replace(f"{src.stem}.dat", f"{name}.dat")
    text = f"{name}{text.split(maxsplit=1)[0][len(src.stem):]} " + text.split(maxsplit=1)[1]
    (dst_dir / f"{name}.hea").write_text(text)
    shutil.copy(src.with_suffix(".dat"), dst_dir / f"{name}.dat")
    return dst_dir / f"{name}.hea"


def write_wfdb_uv(path_base: Path, signals_uv: np.ndarray, fs: float, leads) -> None:
    import wfdb

    wfdb.wrsamp(path_base.name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads),
                p_signal=signals_uv.astype(np.float64) / 1000.0, fmt=["16"] * len(leads), adc_gain=[1000.0] * len(leads),
                baseline=[0] * len(leads), write_dir=str(path_base.parent))


CART_AECG = """<?xml version="1.0" encoding="UTF-8"?>
<hl7:AnnotatedECG xmlns:hl7="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <hl7:id root="2.16.840.1.113883.3.1"/>
  <hl7:code code="93000" codeSystem="2.16.840.1.113883.6.12"/>
  <hl7:effectiveTime><hl7:low value="20240501083000-0500"/><hl7:high value="20240501083000.008-0500"/></hl7:effectiveTime>
  <hl7:component>
    <hl7:series>
      <hl7:code code="RHYTHM" codeSystem="2.16.840.1.113883.5.4"/>
      <hl7:component><hl7:sequenceSet>
        <hl7:component><hl7:sequence>
          <hl7:code code="TIME_ABSOLUTE" codeSystem="2.16.840.1.113883.5.4"/>
          <hl7:value xsi:type="GLIST_TS"><hl7:head value="20240501083000.000-0500"/><hl7:increment value="2" unit="ms"/></hl7:value>
        </hl7:sequence></hl7:component>
        <hl7:component><hl7:sequence>
          <hl7:code code="MDC_ECG_LEAD_II" codeSystem="2.16.840.1.113883.6.24"/>
          <hl7:value xsi:type="SLIST_PQ"><hl7:origin value="0.1" unit="mV"/><hl7:scale value="5" unit="uV"/>
            <hl7:digits>0 10 -20
              40</hl7:digits></hl7:value>
        </hl7:sequence></hl7:component>
        <hl7:component><hl7:sequence>
          <hl7:code code="MDC_ECG_LEAD_aVR" codeSystem="2.16.840.1.113883.6.24"/>
          <hl7:value xsi:type="SLIST_PQ"><hl7:origin value="0" unit="uV"/><hl7:scale value="2.5" unit="uV"/>
            <hl7:digits>1 2 3 4</hl7:digits></hl7:value>
        </hl7:sequence></hl7:component>
      </hl7:sequenceSet></hl7:component>
      <hl7:derivation><hl7:derivedSeries>
        <hl7:code code="REPRESENTATIVE_BEAT" codeSystem="2.16.840.1.113883.5.4"/>
      </hl7:derivedSeries></hl7:derivation>
    </hl7:series>
  </hl7:component>
</hl7:AnnotatedECG>
"""


def pulse_wave(beats_s, fs, seconds, amps=None, transit=0.25, tau=0.09, dicrotic=0.35):
    """A plethysmogram-like wave: a skewed pulse with a dicrotic hump after each beat."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for i, b in enumerate(beats_s):
        a = 1.0 if amps is None else amps[i]
        u = t - (b + transit)
        on = u > 0
        x[on] += a * (u[on] / tau) ** 2 * np.exp(-u[on] / tau) / (4 * np.exp(-2))
        v = u - 0.35
        on = v > 0
        x[on] += dicrotic * a * (v[on] / tau) ** 2 * np.exp(-v[on] / tau) / (4 * np.exp(-2))
    return x + 0.01 * np.random.default_rng(0).standard_normal(t.size)
