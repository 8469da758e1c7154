"""report.html in a real browser: headless Chromium (Debian's ``chromium``) loads the page offline,
runs its sort script, and a probe script reports the table rows and the decoded image sizes.

``report_in_chromium`` is shared with the end-to-end screening tests.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from edge_ecg.screen.report import LabelInfo, ReportContext, render_report, write_report
from edge_ecg.screen.results import NOT_SCREENED, SCREENED, BundleId, RecordResult

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio"]

# Runs after load (images decoded): counts rows, measures every image, sorts by clicking headings.
_PROBE = """
<script>
window.addEventListener('load', function(){
  function order(){ return Array.prototype.map.call(document.querySelectorAll('#summary tbody tr'),
                     function(r){ return r.getAttribute('data-record'); }); }
  var heads = document.querySelectorAll('#summary thead th');
  var out = {rows: document.querySelectorAll('#summary tbody tr').length,
             headings: Array.prototype.map.call(heads, function(h){ return h.textContent; }),
             images: Array.prototype.map.call(document.images, function(i){
               return {complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, src: i.src.slice(0, 22)}; }),
             initial: order(), external: document.querySelectorAll('script[src], link[href], img[src^="http"]').length};
  heads[2].click(); out.by_max_desc = order();
  heads[2].click(); out.by_max_asc = order();
  heads[1].click(); out.by_flag_desc = order();
  var pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("headless Chromium not installed (Debian package 'chromium'; `make test` installs it as root)")
    return path


def report_in_chromium(report: Path, tmp_path: Path) -> dict:
    """Open a copy of ``report`` with the probe script in headless Chromium; the probe's JSON."""
    exe = chromium()
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
           probe_page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"probe did not run (rc {proc.returncode}); stderr: {proc.stderr[-2000:]}"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


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
    # flagged first, most probable first, then the unflagged, then the one not screened
    assert probe["initial"] == ["rec0", "rec2", "rec3", "rec1", "broken"]
    assert probe["by_max_desc"][:4] == ["rec0", "rec2", "rec3", "rec1"]
    assert probe["by_max_asc"] == ["broken", "rec1", "rec3", "rec2", "rec0"]
    assert set(probe["by_flag_desc"][:2]) == {"rec0", "rec2"} and probe["by_flag_desc"][-1] == "broken"
