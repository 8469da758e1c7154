"""``report.html``: one self-contained page a clinician can open on the box, with no network.

Everything is inline: CSS, a small sort script, and each flagged record's 12-lead image as a
``data:`` URI, so the file can be copied to a USB stick or mailed and still shows everything.
No external scripts, fonts or stylesheets are referenced.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge_ecg.screen.results import RecordResult

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#111}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
.meta{color:#444;font-size:.9em} .warn{background:#fff4d6;border:1px solid #e0c060;padding:.5em .8em;margin:.8em 0}
table{border-collapse:collapse;font-size:.88em} th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f1f1f1;cursor:pointer;user-select:none;white-space:nowrap} th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.flagged td{background:#fde8e8} tr.skipped td{color:#777;background:#f7f7f7}
td.hit{font-weight:bold;color:#a00000} .finding{margin:.6em 0 1.4em 0;padding-bottom:1em;border-bottom:1px solid #ddd}
.finding img{max-width:100%;height:auto;border:1px solid #bbb;display:block;margin:.5em 0}
ul{margin:.3em 0}
"""

# Sorts the summary table by a column; numbers sort numerically by their data-v attribute.
_JS = """
(function(){
  var table=document.getElementById('summary'); if(!table) return;
  var heads=table.tHead.rows[0].cells;
  function key(row,i){var c=row.cells[i];var v=c.getAttribute('data-v');
    if(v===null) return c.textContent.trim().toLowerCase(); var f=parseFloat(v); return isNaN(f)?-Infinity:f;}
  function sortBy(i,desc){
    var body=table.tBodies[0]; var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){var x=key(a,i),y=key(b,i); if(x<y) return desc?1:-1; if(x>y) return desc?-1:1; return 0;});
    rows.forEach(function(r){body.appendChild(r);});
    for(var j=0;j<heads.length;j++) heads[j].className='';
    heads[i].className=desc?'sorted-desc':'sorted-asc';
  }
  for(var i=0;i<heads.length;i++){(function(i){heads[i].addEventListener('click',function(){
    sortBy(i, heads[i].className!=='sorted-desc');});})(i);}
  window.sortSummary=sortBy;
})();
"""


@dataclass(frozen=True)
class LabelInfo:
    name: str
    threshold: float
    priority: str = ""


@dataclass(frozen=True)
class ReportContext:
    """What the page says about the run, besides the rows."""

    bundle_name: str
    bundle_version: str
    bundle_hash: str
    labels: tuple[LabelInfo, ...]
    aggregate: str
    backend: str = ""
    generated: str = ""
    notice: str = ""  # e.g. "demo bundle: not for diagnosis"


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _num_cell(p: float | None, hit: bool = False) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return '<td class="num" data-v="-1"></td>'
    cls = "num hit" if hit else "num"
    return f'<td class="{cls}" data-v="{p:.6f}">{p:.3f}</td>'


def _summary_table(results: Sequence[RecordResult], labels: Sequence[LabelInfo]) -> str:
    head = ["Record", "Flag", "Max prob."] + [f"{_e(lb.name)} (&ge;{lb.threshold:g})" for lb in labels] + ["Findings", "Status / notes"]
    out = ['<table id="summary"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in results:
        if r.screened:
            cls = "flagged" if r.flagged else ""
            flag = ("FLAG", 1) if r.flagged else ("no", 0)
            cells = [
                f'<td><a href="#rec-{_e(r.content_hash[:16])}">{_e(r.record)}</a></td>' if r.flagged else f"<td>{_e(r.record)}</td>",
                f'<td data-v="{flag[1]}">{flag[0]}</td>',
                _num_cell(r.max_probability),
            ]
            cells += [_num_cell(r.probabilities.get(lb.name), r.flags.get(lb.name, False)) for lb in labels]
            cells.append("<td>" + _e(", ".join(k for k, _ in r.findings)) + "</td>")
            cells.append("<td>" + _e("; ".join(r.notes)) + "</td>")
        else:
            cls = "skipped"
            cells = [f"<td>{_e(r.record)}</td>", '<td data-v="-1">not screened</td>', _num_cell(None)]
            cells += [_num_cell(None) for _ in labels]
            cells.append("<td></td>")
            cells.append("<td>" + _e(r.reason) + "</td>")
        out.append(f'<tr class="{cls}" data-record="{_e(r.record)}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _flagged_section(r: RecordResult, out_dir: Path, labels: Sequence[LabelInfo]) -> str:
    by_name = {lb.name: lb for lb in labels}
    parts = [f'<div class="finding" id="rec-{_e(r.content_hash[:16])}">', f"<h3>{_e(r.record)}</h3>",
             f'<div class="meta">source: {_e(r.source)} &middot; {r.windows} window(s), {_e(r.aggregate)} over windows</div>',
             "<b>Findings</b><ul>"]
    for name, p in r.findings:
        lb = by_name.get(name)
        extra = f" (threshold {lb.threshold:g}{', priority ' + _e(lb.priority) if lb and lb.priority else ''})" if lb else ""
        parts.append(f"<li>{_e(name)}: probability {p:.3f}{extra}</li>")
    parts.append("</ul><b>Quality notes</b><ul>")
    parts += [f"<li>{_e(n)}</li>" for n in r.notes] or ["<li>none</li>"]
    parts.append("</ul>")
    img = out_dir / r.image if r.image else None
    if img is not None and img.is_file():
        parts.append(f'<img alt="12-lead ECG of {_e(r.record)}" src="{_png_data_uri(img)}">')
    else:
        parts.append("<p><i>no image available for this record</i></p>")
    parts.append("</div>")
    return "\n".join(parts)


def render_report(results: Sequence[RecordResult], ctx: ReportContext, out_dir: Path) -> str:
    """The page as a string; images are read from ``out_dir`` (paths in ``RecordResult.image``)."""
    screened = [r for r in results if r.screened]
    flagged = [r for r in screened if r.flagged]
    skipped = [r for r in results if not r.screened]
    # flagged first, then most probable: the order a clinician reads them in
    ordered = sorted(results, key=lambda r: (not r.flagged, not r.screened,
                                             -(r.max_probability if r.screened else -1.0), r.record))
    generated = ctx.generated or dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")
    thresholds = ", ".join(f"{_e(lb.name)} &ge; {lb.threshold:g}" for lb in ctx.labels)
    body = [
        "<h1>ECG screening report</h1>",
        f'<div class="meta">model bundle <b>{_e(ctx.bundle_name)}</b> version {_e(ctx.bundle_version)} '
        f'(sha256 {_e(ctx.bundle_hash[:16])}&hellip;){" on " + _e(ctx.backend) if ctx.backend else ""}; '
        f"generated {_e(generated)}; per-record result = {_e(ctx.aggregate)} over windows; flag thresholds: {thresholds}</div>",
        f'<p id="counts"><b>{len(results)}</b> records: <b>{len(screened)}</b> screened, '
        f'<b>{len(flagged)}</b> flagged, <b>{len(skipped)}</b> not screened.</p>',
        '<div class="warn">Decision support only: every flag needs review of the full ECG by a clinician; '
        "an unflagged record is not a normal ECG.</div>",
    ]
    if ctx.notice:
        body.append(f'<div class="warn">{_e(ctx.notice)}</div>')
    body += ["<h2>Summary</h2>", "<p class=\"meta\">Click a column heading to sort.</p>", _summary_table(ordered, ctx.labels)]
    if skipped:
        body.append("<h2>Not screened</h2><ul id=\"not-screened\">")
        body += [f"<li><b>{_e(r.record)}</b> ({_e(r.source)}): {_e(r.reason)}</li>" for r in sorted(skipped, key=lambda r: r.record)]
        body.append("</ul>")
    noted = sorted((r for r in screened if r.notes), key=lambda r: r.record)
    if noted:  # resampled, derived leads, gaps, flat leads: worth knowing before trusting a result
        body.append("<h2>Screened with quality notes</h2><ul id=\"noted\">")
        body += [f"<li><b>{_e(r.record)}</b>{' (flagged)' if r.flagged else ''}: {_e('; '.join(r.notes))}</li>" for r in noted]
        body.append("</ul>")
    body.append(f"<h2>Flagged records ({len(flagged)})</h2>")
    fl = sorted(flagged, key=lambda r: (-r.max_probability, r.record))
    body += [_flagged_section(r, out_dir, ctx.labels) for r in fl] or ["<p>No record was flagged.</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>ECG screening: {_e(ctx.bundle_name)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")


def write_report(path: Path, results: Sequence[RecordResult], ctx: ReportContext) -> Path:
    path.write_text(render_report(results, ctx, path.parent), encoding="utf-8")
    return path
