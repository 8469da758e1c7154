"""report.html in a real browser: headless Chromium (Debian's ``chromium``) loads the page offline,
runs its sort script, and a probe script reports the table rows and the decoded image sizes.

``report_in_chromium`` is shared with the end-to-end screening tests.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_ecg.screen.report import LabelInfo, ReportContext, render_report, write_report
from edge_ecg.screen.results import NOT_SCREENED, SCREENED, BundleId, RecordResult
from helpers.chromium import report_in_chromium, screenshot


# Runs after load (images decoded): counts rows, measures every image, sorts by clicking headings.


def no_horizontal_overflow(probe: dict) -> bool:
    return probe["scroll_width"] <= probe["viewport"] and probe["table_right"] <= probe["viewport"]


def _png(path: Path, size=(640, 320)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (255, 240, 240)).save(path)
    return path


def _key(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def _results(out: Path) -> list[RecordResult]:
    bid = BundleId("demo", "0.1", _key("bundle"))
    rows = []
    for i, (p1, p2) in enumerate([(0.95, 0.1), (0.2, 0.3), (0.7, 0.8), (0.05, 0.4)]):
        key = _key(str(i))
        r = RecordResult(record=f"rec{i}", source=f"in/rec{i}.hea", content_hash=key, status=SCREENED, bundle=bid,
                         aggregate="max", notes=["resampled from 257 Hz to 500 Hz"] if i == 1 else [])
        r.probabilities = {"LVH": p1, "<ischemia & co>": p2}
        r.flags = {"LVH": p1 >= 0.5, "<ischemia & co>": p2 >= 0.6}
        r.windows = 1
        if r.flagged:
            _png(out / "images" / f"{key[:16]}.png")
            r.image = f"images/{key[:16]}.png"
        rows.append(r)
    rows.append(RecordResult(record="broken", source="in/broken.edf", content_hash=_key("x"), status=NOT_SCREENED,
                             bundle=bid, reason="not an EDF file: header is 12 bytes"))
    return rows


CTX = ReportContext(bundle_name="demo", bundle_version="0.1", bundle_hash=_key("bundle"),
                    labels=(LabelInfo("LVH", 0.5, "low"), LabelInfo("<ischemia & co>", 0.6, "medium")), aggregate="max")


def test_report_is_self_contained_and_escaped(tmp_path):
    page = render_report(_results(tmp_path), CTX, tmp_path)
    assert "http://" not in page and "https://" not in page
    assert "<script src" not in page and "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count('src="data:image/png;base64,') == 2  # the two flagged records, inline
    assert "&lt;ischemia &amp; co&gt;" in page and "<ischemia &" not in page
    assert "not an EDF file: header is 12 bytes" in page
    assert '<b>5</b> records: <b>4</b> screened, <b>2</b> flagged, <b>1</b> not screened' in page


def test_report_renders_in_chromium(tmp_path):
    out = tmp_path / "out"
    report = write_report(out / "report.html", _results(out), CTX) if out.mkdir() is None else None
    probe = report_in_chromium(report, tmp_path)
    assert probe["rows"] == 5
    assert probe["external"] == 0
    assert len(probe["images"]) == 2
    for img in probe["images"]:
        assert img["complete"] and (img["w"], img["h"]) == (640, 320) and img["src"].startswith("data:image/png")
    # flagged first by the bundle's priority (rec2's medium finding before rec0's low one), then the
    # unflagged, then the one not screened
    assert probe["initial"] == ["rec2", "rec0", "rec1", "rec3", "broken"]
    assert probe["by_max_desc"][:4] == ["rec0", "rec2", "rec1", "rec3"]  # the LVH column
    assert probe["by_max_asc"] == ["broken", "rec3", "rec1", "rec2", "rec0"]
    assert probe["by_flag_desc"][:2] == ["rec2", "rec0"] and probe["by_flag_desc"][-1] == "broken"
    assert no_horizontal_overflow(probe) and probe["broken_images"] == 0


def _clinic_results(out: Path, n: int = 40) -> tuple[list[RecordResult], tuple[LabelInfo, ...]]:
    """Rows as the committed 12lead-screen bundle's labels give them (its real thresholds, which
    range from 0.048 to 0.979), with long record names and notes, and a real-size image."""
    labels = (LabelInfo("af_flutter", 0.048129, "none"), LabelInfo("lvh", 0.067849, "none"),
              LabelInfo("conduction_abnormality", 0.978821, "high", calibrated=True, alarm=True),
              LabelInfo("sinus_bradycardia", 0.161405, "low"))
    bid = BundleId("12lead-screen", "0.2.0", _key("b"))
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        key = _key(f"c{i}")
        r = RecordResult(record=f"exports/ward-{i % 4}/2024-05-{i % 28 + 1:02d}_cart{i}_resting_12lead_export.xml",
                         source=f"/media/usb/exports/ward-{i % 4}/x{i}.xml", content_hash=key, status=SCREENED,
                         bundle=bid, aggregate="max", windows=1,
                         notes=["monitor quality check: high-frequency noise in II, aVF; unstable baseline in V1"] if i % 3 == 0 else [])
        r.probabilities = {lb.name: float(rng.uniform(0, 1)) for lb in labels}
        r.probabilities["conduction_abnormality"] = 0.9995 if i == 0 else r.probabilities["conduction_abnormality"]
        r.flags = {lb.name: r.probabilities[lb.name] >= lb.threshold for lb in labels}
        if r.flagged and i < 3:
            _png(out / "images" / f"{key[:16]}.png", (1600, 900))
            r.image = f"images/{key[:16]}.png"
        rows.append(r)
    rows.append(RecordResult(record="exports/broken-link.xml", source="/media/usb/exports/broken-link.xml",
                             content_hash=_key("bl"), status=NOT_SCREENED, bundle=bid,
                             reason="broken link: it points to /mnt/old-share/ecg/4711.xml, which does not exist"))
    return rows, labels


def test_report_speaks_clinical_words(tmp_path):
    rows, labels = _clinic_results(tmp_path)
    ctx = ReportContext(bundle_name="12lead-screen", bundle_version="0.2.0", bundle_hash=_key("b"), labels=labels,
                        aggregate="max")
    page = render_report(rows, ctx, tmp_path)
    assert "Atrial fibrillation or flutter" in page and "Left ventricular hypertrophy" in page
    assert 'title="code name: conduction_abnormality' in page  # the code name in a tooltip
    assert ">conduction_abnormality<" not in page and "Max prob" not in page
    body = page.split("</style>", 1)[1]
    assert ">99.9%<" in body and "100%" not in body and "p=1.00" not in body  # 0.9995 is not 100%
    assert "priority none" not in page
    screened = sum(1 for r in rows if r.screened)
    for lb in labels:  # a summary line per label
        k = sum(1 for r in rows if r.screened and r.flags[lb.name])
        assert f"{k} of {screened} screened" in page
    # "calibrated" only where the bundle says so
    assert page.count("calibrated probability") >= 1 and "model score (not calibrated)" in page
    flagged_order = re.findall(r'<div class="finding" id="rec-([0-9a-f]{16})"', page)
    first = next(r for r in rows if r.content_hash.startswith(flagged_order[0]))
    assert first.flags["conduction_abnormality"]  # the high-priority finding comes first


@pytest.mark.parametrize("width", [1280, 1920])
def test_report_fits_the_screen(tmp_path, width):
    """No horizontal scroll and every image loaded, at 1280 and 1920 px, in headless Chromium."""
    out = tmp_path / "out"
    out.mkdir()
    rows, labels = _clinic_results(out)
    ctx = ReportContext(bundle_name="12lead-screen", bundle_version="0.2.0", bundle_hash=_key("b"), labels=labels,
                        aggregate="max", generated="2024-05-01 08:30:00")
    report = write_report(out / "report.html", rows, ctx)
    probe = report_in_chromium(report, tmp_path, width=width)
    assert probe["viewport"] == width
    assert no_horizontal_overflow(probe), probe
    assert probe["broken_images"] == 0 and len(probe["images"]) == 3
    assert len(probe["per_label"]) == 4
    shot = screenshot(report, tmp_path / f"report-{width}.png", tmp_path, width)
    with Image.open(shot) as img:
        assert img.size == (width, 1000)
