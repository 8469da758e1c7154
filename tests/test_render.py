"""The renderer: layout geometry, determinism, gaps, clipping, and real 12-lead records."""

from __future__ import annotations

import numpy as np
import pytest

from edge_ecg.errors import ConfigError, RecordError
from edge_ecg.records import Record, read_record
from edge_ecg.render import RenderSpec, render, to_model_input
from edge_ecg.render.raster import _plan

LEADS12 = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
FS = 500.0


def blank12(fs: float = FS, seconds: float = 10.0) -> np.ndarray:
    return np.zeros((int(fs * seconds), 12), dtype=np.float32)


def ink(img: np.ndarray) -> np.ndarray:
    """Darkness in [0, 1] per pixel (traces are black on white)."""
    return 1.0 - img.min(axis=2).astype(np.float64) / 255.0


def inked_rows(img: np.ndarray, col: int, rows: slice) -> np.ndarray:
    dark = ink(img)[rows, col]
    return np.nonzero(dark > 0.05)[0] + (rows.start or 0)


def test_impulse_lands_in_its_panel_and_the_rhythm_strip():
    sig = blank12()
    ii = LEADS12.index("II")
    sig[500, ii] = 2000.0  # t = 1.0 s: column 0 of the grid (lead II is row 1) and the strip
    sig[1500, ii] = 2000.0  # t = 3.0 s: grid column 1 shows aVL in row 1, so only the strip has it
    img = render(Record(sig, FS, LEADS12))
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    # 224 px for 250 mm of paper: 0.896 px/mm, 10 mm/mV -> 2000 uV is 17.9 px above the zero line
    peak = 2000.0 * 224 / 250 * 10 / 1000
    x1, x3 = int(1.0 * 22.4), int(3.0 * 22.4)  # 22.4 px per second
    for band_top, col in ((56, x1), (168, x1), (168, x3)):
        baseline = band_top + 28
        rows = inked_rows(img, col, slice(band_top, band_top + 56))
        assert rows.min() == int(baseline - peak), (band_top, col, rows)
        assert rows.max() == baseline
    # no spike where the grid shows aVL (row 1, t = 3 s) nor in other rows' columns
    assert inked_rows(img, x3, slice(56, 112)).tolist() == [84]
    assert inked_rows(img, x1, slice(0, 56)).tolist() == [28]
    # a flat zero line elsewhere: exactly the baseline pixel rows
    assert set(inked_rows(img, 150, slice(56, 112))) == {84}


def test_step_goes_up_by_the_gain_in_pixels():
    sig = blank12()
    v1 = LEADS12.index("V1")  # grid column 2 (5.0-7.5 s), row 0
    sig[2750:, v1] = 1000.0  # step at t = 5.5 s -> x = 123.2
    img = render(Record(sig, FS, LEADS12), RenderSpec(center=False))
    dark = ink(img)
    before = np.average(np.arange(56), weights=dark[:56, 118])
    after = np.average(np.arange(56), weights=dark[:56, 130])
    assert before == pytest.approx(28.0, abs=0.05)  # the zero line is pixel row 28 of the band
    assert before - after == pytest.approx(8.96, abs=0.05)  # 1 mV = 10 mm = 8.96 px
    assert dark[19:28, 123].min() > 0.9  # the step itself is a vertical stroke in its column
    assert dark[:56, 112:118].sum() == pytest.approx(6 * 1.0, abs=1e-6)  # line width 1 px, all ink


def test_deterministic_same_bytes(tmp_path):
    rng = np.random.default_rng(7)
    sig = (rng.standard_normal((5000, 12)) * 300).astype(np.float32)
    sig[1000:1200, 3] = np.nan
    rec = Record(sig, FS, LEADS12)
    a = render(rec).tobytes()
    _plan.cache_clear()
    b = render(Record(sig.copy(), FS, LEADS12)).tobytes()
    assert a == b
    spec = RenderSpec(layout="strips", leads=("II", "V5"), grid=True)
    assert render(rec, spec).tobytes() == render(rec, spec).tobytes()


def test_nan_gap_is_drawn_as_a_gap_and_nan_lead_as_blank():
    sig = blank12()
    sig[:, LEADS12.index("II")] = np.where(np.arange(5000) % 250 < 125, 500.0, -500.0)
    sig[500:1000, LEADS12.index("II")] = np.nan  # 1.0-2.0 s missing: columns 23..44
    sig[:, LEADS12.index("V6")] = np.nan
    img = render(Record(sig, FS, LEADS12))
    strip = ink(img)[168:224]
    assert strip[:, 24:44].max() == 0.0
    assert strip[:, 2:21].max(axis=0).min() > 0.5 and strip[:, 46:200].max(axis=0).min() > 0.5
    assert ink(img)[112:168, 168:224].max() == 0.0  # V6 panel (row 2, column 3) stays blank


def test_trace_is_clipped_not_wrapped():
    sig = blank12()
    square = np.where(np.arange(5000) % 200 < 100, 1e6, -1e6)  # +-1 V: far outside any panel
    sig[:, LEADS12.index("I")] = square
    img = render(Record(sig, FS, LEADS12), RenderSpec(center=False))
    dark = ink(img)
    strokes = dark[:56, :56]
    assert strokes[0].max() > 0.9 and strokes[55].max() > 0.9  # the edges cross the whole panel
    assert (strokes.max(axis=0) > 0.9).sum() >= 10  # one vertical stroke per edge, nothing else
    for band_top in (56, 112, 168):  # nothing spills (or wraps) into the rows below
        assert set(np.nonzero(dark[band_top : band_top + 56, :56].max(axis=1))[0]) == {28}


def test_anti_aliased_line_has_intermediate_greys():
    sig = blank12()
    sig[:, :] = 1000.0 * np.sin(np.linspace(0, 20 * np.pi, 5000))[:, None]
    img = render(Record(sig, FS, LEADS12))
    values = set(np.unique(img))
    assert 0 in values and 255 in values and len(values) > 20


def test_strips_stack_window_leads_and_handle_rates():
    rng = np.random.default_rng(1)
    for fs in (100.0, 250.0, 360.0, 1000.0):
        n = int(fs * 10)
        sig = (rng.standard_normal((n, 2)) * 200).astype(np.float32)
        rec = Record(sig, fs, ("II", "V1"))
        img = render(rec, RenderSpec(layout="strips", width=448, height=160))
        dark = ink(img)
        assert img.shape == (160, 448, 3)
        assert dark[:80].max(axis=0).min() > 0.3 and dark[80:].max(axis=0).min() > 0.3, fs
    # fewer samples than pixel columns (100 Hz over 1250 px): the line still joins every column
    t = np.arange(1000) / 100.0
    slow = Record((500 * np.sin(2 * np.pi * 1.3 * t))[:, None], 100.0, ("II",))
    dark = ink(render(slow, RenderSpec(layout="strips", width=1250, height=100)))
    assert (dark > 0.25).any(axis=0).all()


def test_short_window_leaves_the_rest_blank():
    sig = blank12(seconds=5.0)
    img = render(Record(sig, FS, LEADS12))
    assert ink(img)[:, 120:].max() == 0.0 and ink(img)[:, :100].max() > 0.5


def test_missing_lead_names_the_window_and_lead():
    rec = Record(np.zeros((2500, 1), np.float32), 250.0, ("II",), source="cart.csv")
    with pytest.raises(RecordError, match=r"cart.csv.*V5"):
        render(rec, RenderSpec(layout="strips", leads=("V5",)))
    with pytest.raises(RecordError, match="cart.csv"):
        render(rec)


def test_eight_lead_cart_renders_like_the_twelve_leads(ludb_dir):
    full = read_record(ludb_dir / "data" / "1.hea")
    i, ii = full.lead("I"), full.lead("II")
    derived = full.signals.copy()
    derived[:, 2], derived[:, 3], derived[:, 4], derived[:, 5] = ii - i, -(i + ii) / 2, i - ii / 2, ii - i / 2
    eight = full.select(("I", "II", "V1", "V2", "V3", "V4", "V5", "V6"))
    expect = render(Record(derived, full.fs, full.leads))
    assert np.array_equal(render(eight), expect)


def test_to_model_input_normalisation():
    img = np.zeros((224, 224, 3), np.uint8)
    img[:, :112] = 255
    x = to_model_input(img)
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    assert x[0, :, :, :112].min() == 1.0 and x[0, :, :, 112:].max() == -1.0
    batch = to_model_input(np.stack([img, img]))
    assert batch.shape == (2, 3, 224, 224) and batch.flags.c_contiguous


def test_spec_round_trips_and_refuses_bad_values():
    spec = RenderSpec(layout="strips", leads=("II", "V1"), width=320, height=96, grid=True)
    d = spec.to_dict()
    assert all(isinstance(v, (str, int, float, bool, list)) for v in d.values())
    assert RenderSpec.from_dict(d) == spec
    assert RenderSpec.from_dict({"seconds": 10}) == RenderSpec()
    with pytest.raises(ConfigError, match="layout"):
        RenderSpec(layout="3x4")
    with pytest.raises(ConfigError, match="width"):
        RenderSpec(width=0)
    with pytest.raises(ConfigError, match=r"RenderSpec.colour: unknown key"):
        RenderSpec.from_dict({"colour": "red"})
    with pytest.raises(ConfigError, match=r"bundle.toml: render.width: must be an integer"):
        RenderSpec.from_dict({"width": "224"}, "bundle.toml: render")
    with pytest.raises(ConfigError, match="12 leads"):
        RenderSpec(leads=("I", "II"))


def test_ludb_every_record_has_traces_in_the_expected_panels(ludb_dir):
    """Each of the 13 panels (3x4 grid + rhythm strip) holds a trace centred on its zero line."""
    heas = sorted((ludb_dir / "data").glob("*.hea"))
    assert len(heas) >= 150
    for hea in heas:
        img = render(read_record(hea))
        dark = ink(img)
        panels = [(b, c * 56, c * 56 + 56) for b in range(3) for c in range(4)] + [(3, 0, 224)]
        for band, x0, x1 in panels:
            box = dark[band * 56 : band * 56 + 56, x0:x1]
            assert (box.max(axis=0) > 0.3).mean() > 0.95, (hea.name, band, x0)  # a trace across the panel
            centre = np.average(np.arange(56), weights=box.sum(axis=1))
            assert abs(centre - 28) < 8, (hea.name, band, x0, centre)
