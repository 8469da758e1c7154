"""Rendered-window cache and grouped splits."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from edge_ecg.errors import RecordError
from edge_ecg.records import Record, read_record
from edge_ecg.render import RenderSpec, render
from export.datasets import cache as cache_mod
from export.datasets.cache import cache_key, rendered
from export.datasets.sources import ludb_windows, cinc_vt_windows
from export.datasets.windows import WindowSet, read_window, select_leads
from export.train.crossval import grouped_folds
from export.train.evaluate import fold_assignment, split_for_fold


def test_select_leads_substitutes_the_other_monitor_lead():
    rec = Record(np.zeros((10, 3), np.float32), 250.0, ("II", "MCL", "V"))
    out = select_leads(rec, ("II", "V"))
    assert out.leads == ("II", "V") and "lead_substitutions" not in out.meta
    rec2 = Record(np.arange(20, dtype=np.float32).reshape(10, 2), 250.0, ("II", "MCL"))
    out2 = select_leads(rec2, ("II", "V"))
    assert out2.meta["lead_substitutions"] == {"V": "MCL"}
    np.testing.assert_array_equal(out2.signals[:, 1], rec2.signals[:, 1])
    with pytest.raises(RecordError, match="needs 2 ECG leads"):
        select_leads(Record(np.zeros((10, 1), np.float32), 250.0, ("II",)), ("II", "V"))


@pytest.mark.shared_data
def test_cache_renders_once_and_matches_the_renderer(ludb_dir, tmp_path, monkeypatch):
    ws = ludb_windows(ludb_dir).subset([0, 1, 2])
    spec = RenderSpec(layout="12lead", width=64, height=64)
    leads = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
    first = rendered(ws, spec, tmp_path, leads=leads, progress=False)
    direct = render(read_window(ws.refs[1], leads), spec)
    np.testing.assert_array_equal(first[1], direct)
    import edge_ecg.render as render_pkg

    calls = []
    monkeypatch.setattr(render_pkg, "render", lambda *a, **k: calls.append(1))
    again = rendered(ws, spec, tmp_path, leads=leads, progress=False)
    assert calls == [] and np.array_equal(np.asarray(again), np.asarray(first))
    other = dataclasses.replace(spec, mm_per_mv=20.0)
    assert cache_key(ws, other, leads) != cache_key(ws, spec, leads)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=8, max_size=120), st.integers(2, 6), st.integers(0, 5))
def test_grouped_folds_never_split_a_group(group_ids, k, seed):
    groups = np.array([f"r{g}" for g in group_ids])
    labels = (np.array(group_ids)[:, None] % 3 == 0).astype(np.float32)
    folds = grouped_folds(groups, labels, k, seed)
    for g in np.unique(groups):
        assert len(set(folds[groups == g])) == 1
    assert set(folds) <= set(range(k))


@pytest.mark.shared_data
def test_cv_splits_are_disjoint_by_record(cinc_vt_dir):
    ws = WindowSet.concat([cinc_vt_windows(cinc_vt_dir, 10.0, end_offsets_s=(0.0, 2.0))])
    eval_mask = ws.sources == "cinc2015-vt"
    always = np.zeros(len(ws), bool)
    folds = fold_assignment(ws.groups, ws.labels, eval_mask, always, 4, 0)
    seen_test = set()
    for f in range(4):
        tr, va, te = split_for_fold(folds, f, ws.groups, ws.labels, eval_mask, always, 0)
        g_tr, g_va, g_te = (set(ws.groups[i]) for i in (tr, va, te))
        assert not (g_tr & g_va) and not (g_tr & g_te) and not (g_va & g_te)
        assert eval_mask[te].all() and eval_mask[va].all()
        seen_test |= g_te
    assert seen_test == set(ws.groups)  # every record is tested once
