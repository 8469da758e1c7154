"""The pipeline: ring buffer by sample index, replay pacing, a window per hop, coalescing under
overrun, inference failure as a technical alarm, evidence snapshots, memory bounds."""

from __future__ import annotations

import dataclasses
import json
import io
import time
from pathlib import Path

import numpy as np
import pytest

from edge_ecg.alarms import AlarmManager, EventLog, read_events
from edge_ecg.service.config import BundleConfig
from edge_ecg.service.pipeline import Pipeline
from edge_ecg.service.sinks import EventSinks
from edge_ecg.stream.block import SampleBlock
from edge_ecg.stream.replay_source import ReplaySource, ReplaySpec
from edge_ecg.stream.ring import SampleRing
from helpers.daemon import tiny_bundle
from helpers.records import synthetic


def test_ring_buffer_indexes_by_sample_and_keeps_gaps():
    ring = SampleRing(100, 2)
    block = lambda start, n: SampleBlock(start=start, samples=np.full((n, 2), start, np.float32), fs=100.0, leads=("II", "V1"))
    ring.write(block(0, 30))
    ring.write(block(50, 30))  # 20 samples never arrived
    data, off = ring.read(20, 60)
    assert (data[:10] == 0).all() and np.isnan(data[10:30]).all() and (data[30:] == 50).all()
    assert not off.any(), "a gap is NaN (missing), not an electrode off"
    ring.write(block(80, 90))  # wraps: only the last 100 samples are held
    assert ring.start == 70 and ring.stop == 170
    data, _ = ring.read(60, 75)
    assert np.isnan(data[:10]).all() and (data[10:] == 50).all()
    ring.write(block(200, 250))  # bigger than the ring: newest 100 kept
    data, _ = ring.read(350, 450)
    assert (data == 200).all()


def test_replay_uri_pacing_and_loop():
    spec = ReplaySpec.parse("replay:rec/100?speed=10&start=5&stop=7.5&loop=2")
    assert (spec.path, spec.speed, spec.start_s, spec.stop_s, spec.loop) == ("rec/100", 10.0, 5.0, 7.5, 2)
    src = ReplaySource(synthetic(4.0), speed=10.0, loop=2, block_s=0.1)
    t0 = time.monotonic()
    blocks = list(src)
    wall = time.monotonic() - t0
    assert 0.7 <= wall <= 2.0, wall  # 8 s of stream at 10x
    starts = [b.start for b in blocks]
    assert starts == sorted(starts) and blocks[-1].stop == 2 * 4 * 360
    assert all(b.n == 36 for b in blocks)


def run_pipeline(record, slots, *, lossless=False, evidence=False, state=None, speed=0.0):
    sinks_out = io.StringIO()
    log = EventLog(state / "events.jsonl")
    sinks = EventSinks(log, stdout=sinks_out)
    m = AlarmManager(on_event=lambda e: sinks(e))
    p = Pipeline(ReplaySource(record, speed=speed), m, slots=slots, lossless=lossless, analyzer_factory=lambda *a: None)
    p.start()
    assert p.wait(60)
    p.join()
    log.close()
    return p, m, read_events(state / "events.jsonl").events, sinks_out.getvalue()


@pytest.fixture(scope="module")
def slot(tmp_path_factory):
    from edge_ecg.service.models import load_slot

    path = tiny_bundle(tmp_path_factory.mktemp("bundle"))
    return lambda **kw: load_slot(BundleConfig(path=path, precision="fp32", threads=1, **kw))


def test_one_window_per_hop_when_inference_keeps_up(slot, tmp_path):
    p, m, events, out = run_pipeline(synthetic(40.0), [slot(thresholds={"vrun": 0.0})], lossless=True, state=tmp_path)
    assert p.error is None
    assert p.stats.windows == 16  # windows ending at 10, 12, ..., 40 s
    assert p.stats.coalesced == 0
    raised = [e for e in events if e["kind"] == "raised"]
    assert [e["alarm"] for e in raised] == ["model:vrun"]  # threshold 0 -> on from the first window
    assert raised[0]["evidence"]["window"] == [0.0, 10.0]
    assert raised[0]["evidence"]["bundle"] == "test-rhythm"
    assert "<2>edge-ecg event=raised alarm=model:vrun priority=high" in out
    assert not any(e.get("alarm") == "model:artifact" for e in events), "priority none = finding only"


def test_overrun_coalesces_to_newest_window_and_raises_technical_alarm(slot, tmp_path):
    p, m, events, out = run_pipeline(synthetic(240.0), [slot()], state=tmp_path)
    assert p.error is None
    hops = (240 - 10) // 2 + 1
    assert p.stats.coalesced > 0 and 1 <= p.stats.windows < hops
    assert p.stats.windows + p.stats.coalesced + p.stats.windows_skipped >= hops - 1
    over = [e for e in events if e.get("alarm") == "overrun"]
    assert over and over[0]["kind"] == "raised" and over[0]["category"] == "technical" and over[0]["priority"] == "low"
    assert p._queue.maxsize == 256 and len(p._mailbox) <= 1


class FailingRuntime:
    """Stands in for a runtime that fails mid-run (a GPU fault cannot be produced on this machine)."""

    def predict(self, windows):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")


def test_inference_failure_is_a_technical_alarm_not_a_crash(slot, tmp_path):
    s = slot()
    s = dataclasses.replace(s, classifier=FailingRuntime())
    p, m, events, _ = run_pipeline(synthetic(20.0), [s], lossless=True, state=tmp_path)
    assert p.error is None and p.stats.inference_errors >= 1
    fail = [e for e in events if e.get("alarm") == "inference_failure"]
    assert fail[0]["kind"] == "raised" and fail[0]["category"] == "technical"
    assert "illegal memory access" in fail[0]["evidence"]["reason"]


def test_leads_off_from_stream_is_technical(tmp_path):
    rec = synthetic(12.0)
    sig = rec.signals.copy()
    sig[int(4 * 360): int(7 * 360), 1] = np.nan  # V1 electrode off for 3 s
    p, m, events, _ = run_pipeline(dataclasses.replace(rec, signals=sig), [], state=tmp_path)
    lo = [e for e in events if e.get("alarm") == "leads_off"]
    assert [e["kind"] for e in lo] == ["raised", "cleared"]
    assert lo[0]["evidence"]["leads"] == ["V1"] and lo[0]["category"] == "technical"
    assert 4.0 <= lo[0]["t"] <= 4.2 and 7.0 <= lo[1]["t"] <= 7.2


def test_noise_is_a_technical_condition_from_signal_quality(tmp_path, mitdb_dir):
    """MIT-BIH 101 with strong broadband noise from 10 s raises ``noise``; the clean part does not."""
    pytest.importorskip("edge_ecg.dsp")
    from edge_ecg.records import read_record
    from edge_ecg.service.pipeline import make_analyzer

    rec = read_record(mitdb_dir / "101").slice(0, 30 * 360)
    sig = rec.signals.copy()
    sig[10 * 360:] += np.random.default_rng(0).normal(0, 300, sig[10 * 360:].shape).astype(np.float32)
    log = EventLog(tmp_path / "events.jsonl")
    m = AlarmManager(on_event=lambda e: log.append(e.to_dict()))
    p = Pipeline(ReplaySource(dataclasses.replace(rec, signals=sig), speed=0), m, analyzer_factory=make_analyzer)
    p.start()
    assert p.wait(60)
    log.close()
    noise = [e for e in read_events(tmp_path / "events.jsonl").events if e.get("alarm") == "noise"]
    assert noise and noise[0]["kind"] == "raised" and noise[0]["category"] == "technical" and noise[0]["priority"] == "low"
    assert 10.0 < noise[0]["t"] <= 16.0, noise[0]["t"]


def test_a_strip_model_with_more_input_leads_than_the_source_is_unavailable_not_failing(tmp_path):
    # the committed rhythm bundle is trained on ("II", "V"); a one-lead source cannot feed it: the
    # model is disabled at the first block with a reason (not an inference failure every hop) and
    # the pipeline runs on
    from edge_ecg.service.models import load_slot

    repo = Path(__file__).resolve().parents[1]
    s = load_slot(BundleConfig(path=repo / "bundles" / "rhythm", precision="fp32", threads=1))
    assert len(s.bundle.input_leads) == 2 and not s.required_leads()
    assert s.lead_problem(("II", "V1")) is None
    p, m, events, _ = run_pipeline(synthetic(20.0, leads=("I",)), [s], lossless=True, state=tmp_path)
    assert p.error is None and p.stats.inference_errors == 0 and p.stats.windows == 0
    unavailable = [e for e in events if e.get("alarm") == "model_unavailable"]
    assert unavailable and unavailable[0]["kind"] == "raised"
    assert "needs 2 ECG leads" in json.dumps(unavailable[0]["evidence"])


def test_a_relearn_before_the_stream_is_refused_and_a_failing_one_never_stops_the_stream(mitdb_dir, caplog):
    # a relearn vouches for the rhythm on screen now: before the first block there is none. And an
    # analyzer whose relearn raises (here one without it: a test double standing in for any fault)
    # must leave the classical path running, as every operator action must
    import logging

    from edge_ecg.records import read_record
    from edge_ecg.service.pipeline import make_analyzer

    rec = read_record(mitdb_dir / "101").slice(0, 600 * 360)  # 10 min: the request lands while it streams
    p = Pipeline(ReplaySource(rec, speed=0), AlarmManager(), analyzer_factory=make_analyzer)
    assert "nothing to relearn" in p.request_relearn()["relearn"] and not p._relearn.is_set()

    class NoRelearn:
        def __init__(self, *a):
            self.inner = make_analyzer(*a)

        def __getattr__(self, name):
            if name == "relearn":
                raise AttributeError(name)
            return getattr(self.inner, name)

    p = Pipeline(ReplaySource(rec, speed=0), AlarmManager(), analyzer_factory=NoRelearn)
    caplog.set_level(logging.ERROR, logger="edge_ecg.service.pipeline")
    p.start()
    while p.analyzer is None and not p.done.is_set():
        time.sleep(0.001)
    assert "requested at t=" in p.request_relearn()["relearn"]
    assert p.wait(120) and p.error is None
    assert p.stats.samples == rec.n_samples
    assert any("relearn failed" in r.getMessage() for r in caplog.records), caplog.text
