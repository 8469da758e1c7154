"""Headless Chromium for pages: open a report, read what it laid out, take a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio"]


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
             initial: order(), external: document.querySelectorAll('script[src], link[href], img[src^="http"]').length,
             viewport: window.innerWidth, scroll_width: document.documentElement.scrollWidth,
             table_right: document.getElementById('summary').getBoundingClientRect().right,
             broken_images: Array.prototype.filter.call(document.images, function(i){
               return !(i.complete && i.naturalWidth > 0); }).length,
             per_label: Array.prototype.map.call(document.querySelectorAll('#per-label tbody tr'),
               function(r){ return r.textContent; })};
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


def report_in_chromium(report: Path, tmp_path: Path, width: int = 1280) -> dict:
    """Open a copy of ``report`` with the probe script in headless Chromium, in a window ``width``
    pixels wide; the probe's JSON."""
    exe = chromium()
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom",
           f"--window-size={width},1000", "--hide-scrollbars", probe_page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"probe did not run (rc {proc.returncode}); stderr: {proc.stderr[-2000:]}"
    import html as _html

    return json.loads(_html.unescape(m.group(1)))


def screenshot(page: Path, png: Path, tmp_path: Path, width: int, height: int = 1000) -> Path:
    """A screenshot of ``page`` as headless Chromium shows it in a ``width`` x ``height`` window."""
    exe = chromium()
    cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-shot'}", "--virtual-time-budget=5000",
           f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={png}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot (rc {proc.returncode}): {proc.stderr[-2000:]}"
    return png
