"""``report.html``: one self-contained page a clinician can open on the box, with no network.

Everything is inline: CSS, a small sort script, and each flagged record's 12-lead image as a
``data:`` URI, so the file can be copied to a USB stick or mailed and still shows everything.
No external scripts, fonts or stylesheets are referenced.

Written for the clinician who reads it: labels in clinical words (code names in tooltips), one
column per label with its probability as a percentage (cut, never rounded up to 100%) and its
flag, a line per label with how many records it flagged, flagged records in the order of the
bundle's own priorities, and a layout that fits a 1280 px screen without scrolling sideways.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from edge_ecg.screen.labels import LabelInfo
from edge_ecg.screen.results import RecordResult

__all__ = ["LabelInfo", "ReportContext", "percent", "render_report", "write_report"]

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.2em auto;padding:0 1.2em;
  max-width:1800px;color:#111;overflow-wrap:anywhere}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
.meta{color:#444;font-size:.9em} .warn{background:#fff4d6;border:1px solid #e0c060;padding:.5em .8em;margin:.8em 0}
table{border-collapse:collapse;font-size:.88em;width:100%;table-layout:fixed}
th,td{border:1px solid #ccc;padding:.25em .4em;text-align:left;vertical-align:top}
th{background:#f1f1f1;cursor:pointer;user-select:none;font-weight:600} th.sorted-asc::after{content:" \\25B2"} th.sorted-desc::after{content:" \\25BC"}
th small{font-weight:normal;color:#555;display:block}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.flagged td{background:#fde8e8} tr.skipped td{color:#777;background:#f7f7f7}
td.hit{font-weight:bold;color:#a00000} span.flag{display:inline-block;font-size:.78em;padding:0 .3em;margin-left:.3em;
  border-radius:3px;background:#a00000;color:#fff;font-weight:600}
abbr{text-decoration:underline dotted;cursor:help}
#per-label{width:auto;max-width:100%} #per-label td,#per-label th{cursor:default}
.finding{margin:.6em 0 1.4em 0;padding-bottom:1em;border-bottom:1px solid #ddd}
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
    identifiers: bool = False  # the run kept patient identifiers (--keep-identifiers): show them


def _e(x: object) -> str:
    return html.escape(str(x), quote=True)


def _png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def percent(p: float | None) -> str:
    """A probability as a percentage to 0.1%, cut (never rounded) so that 0.9995 reads 99.9%:
    a clinician must never read "100%" for a model output short of certainty."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return ""
    if p >= 1.0:
        return "100%"
    if p <= 0.0:
        return "0%"
    tenths = math.floor(p * 1000.0 + 1e-9)
    if tenths >= 1000:
        return ">99.9%"
    if tenths == 0:
        return "<0.1%"
    return f"{tenths / 10:.1f}%"


def _kind(lb: LabelInfo) -> str:
    return "calibrated probability" if lb.calibrated else "model score (not calibrated)"


def _label_tooltip(lb: LabelInfo) -> str:
    bits = [f"code name: {lb.name}", f"flagged at {lb.threshold:g} or above", _kind(lb)]
    if lb.priority and lb.priority != "none":
        bits.append(f"alarm priority {lb.priority}")
    if lb.alarm is not None:
        bits.append("may raise an alarm" if lb.alarm else "finding only, never an alarm")
    return "; ".join(bits)


def _num_cell(p: float | None, lb: LabelInfo | None = None, hit: bool = False) -> str:
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return '<td class="num" data-v="-1"></td>'
    cls = "num hit" if hit else "num"
    title = f' title="{_e(lb.title)}: {p:.4f} ({_e(_kind(lb))}); flagged at {lb.threshold:g}"' if lb else ""
    flag = '<span class="flag">FLAG</span>' if hit else ""
    return f'<td class="{cls}" data-v="{p:.6f}"{title}>{percent(p)}{flag}</td>'


def _ranked_findings(r: RecordResult, labels: Sequence[LabelInfo]) -> list[tuple[LabelInfo, float]]:
    """A record's flagged labels, by the bundle's own priority (high first), then probability."""
    by_name = {lb.name: lb for lb in labels}
    found = [(by_name.get(k) or LabelInfo(k, float("nan")), p) for k, p in r.findings]
    order = {lb.name: i for i, lb in enumerate(labels)}
    return sorted(found, key=lambda lp: (lp[0].rank, -lp[1], order.get(lp[0].name, 0)))


def _record_key(r: RecordResult, labels: Sequence[LabelInfo]) -> tuple:
    """Reading order: flagged records by their most urgent finding, then the rest, then not screened."""
    if r.screened and r.flagged:
        top = _ranked_findings(r, labels)[0]
        return (0, top[0].rank, -top[1], r.record)
    return (1 if r.screened else 2, 0, 0.0, r.record)


def _summary_table(results: Sequence[RecordResult], labels: Sequence[LabelInfo]) -> str:
    n = max(len(labels), 1)
    share = 46.0 / n
    cols = ['<col style="width:16%">', '<col style="width:8%">'] + [f'<col style="width:{share:.2f}%">'] * len(labels) + \
        ['<col style="width:30%">']
    head = ["Record", "Result"] + [f'<abbr title="{_e(_label_tooltip(lb))}">{_e(lb.title)}</abbr>'
                                   f"<small>flag at &ge; {_e(percent(lb.threshold))}</small>" for lb in labels] + ["Notes"]
    out = ['<table id="summary"><colgroup>' + "".join(cols) + "</colgroup><thead><tr>" +
           "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in results:
        if r.screened:
            cls = "flagged" if r.flagged else ""
            k = sum(1 for v in r.flags.values() if v)
            result = (f"{k} finding{'s' if k > 1 else ''}", k) if r.flagged else ("none flagged", 0)
            cells = [
                f'<td><a href="#rec-{_e(r.content_hash[:16])}">{_e(r.record)}</a></td>' if r.flagged else f"<td>{_e(r.record)}</td>",
                f'<td data-v="{result[1]}">{result[0]}</td>',
            ]
            cells += [_num_cell(r.probabilities.get(lb.name), lb, r.flags.get(lb.name, False)) for lb in labels]
            cells.append("<td>" + _e("; ".join(r.notes)) + "</td>")
        else:
            cls = "skipped"
            cells = [f"<td>{_e(r.record)}</td>", '<td data-v="-1">not screened</td>']
            cells += [_num_cell(None) for _ in labels]
            cells.append("<td>" + _e(r.reason) + "</td>")
        out.append(f'<tr class="{cls}" data-record="{_e(r.record)}">' + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _per_label(results: Sequence[RecordResult], labels: Sequence[LabelInfo]) -> str:
    """One line per label: how many records it flagged of those screened."""
    screened = [r for r in results if r.screened]
    rows = ['<table id="per-label"><thead><tr><th>Finding</th><th>Flagged</th><th>Flag at</th><th>Shown as</th>'
            "<th>Priority</th></tr></thead><tbody>"]
    for lb in sorted(labels, key=lambda lb: lb.rank):
        k = sum(1 for r in screened if r.flags.get(lb.name))
        pri = lb.priority if lb.priority and lb.priority != "none" else "finding only"
        rows.append(f'<tr data-label="{_e(lb.name)}"><td><abbr title="{_e(_label_tooltip(lb))}">{_e(lb.title)}</abbr></td>'
                    f'<td class="num">{k} of {len(screened)} screened</td><td class="num">&ge; {_e(percent(lb.threshold))}</td>'
                    f"<td>{_e(_kind(lb))}</td><td>{_e(pri)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _flagged_section(r: RecordResult, out_dir: Path, labels: Sequence[LabelInfo], identifiers: bool) -> str:
    parts = [f'<div class="finding" id="rec-{_e(r.content_hash[:16])}">', f"<h3>{_e(r.record)}</h3>",
             f'<div class="meta">source: {_e(r.source)} &middot; {r.windows} window(s), {_e(r.aggregate)} over windows</div>']
    if identifiers and r.patient:
        who = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in r.patient.items())
        parts.append(f'<div class="meta patient">patient {_e(who)}</div>')
    parts.append("<b>Findings</b><ul>")
    for lb, p in _ranked_findings(r, labels):
        extra = [f"flagged at &ge; {_e(percent(lb.threshold))}", _e(_kind(lb))]
        if lb.priority and lb.priority != "none":
            extra.append(f"alarm priority {_e(lb.priority)}")
        parts.append(f'<li><b><abbr title="code name: {_e(lb.name)}">{_e(lb.title)}</abbr></b>: {percent(p)} '
                     f"({'; '.join(extra)})</li>")
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
    labels = tuple(ctx.labels)
    screened = [r for r in results if r.screened]
    flagged = [r for r in screened if r.flagged]
    skipped = [r for r in results if not r.screened]
    ordered = sorted(results, key=lambda r: _record_key(r, labels))
    generated = ctx.generated or dt.datetime.now().replace(microsecond=0).isoformat(sep=" ")
    body = [
        "<h1>ECG screening report</h1>",
        f'<div class="meta">model bundle <b>{_e(ctx.bundle_name)}</b> version {_e(ctx.bundle_version)} '
        f'(sha256 {_e(ctx.bundle_hash[:16])}&hellip;){" on " + _e(ctx.backend) if ctx.backend else ""}; '
        f"generated {_e(generated)}; per-record result = {_e(ctx.aggregate)} over windows"
        f"{'' if ctx.identifiers else '; patient identifiers left out'}</div>",
        f'<p id="counts"><b>{len(results)}</b> records: <b>{len(screened)}</b> screened, '
        f'<b>{len(flagged)}</b> flagged, <b>{len(skipped)}</b> not screened.</p>',
        '<div class="warn">Decision support only: every flag needs review of the full ECG by a clinician; '
        "an unflagged record is not a normal ECG.</div>",
    ]
    if ctx.notice:
        body.append(f'<div class="warn">{_e(ctx.notice)}</div>')
    body += ["<h2>Findings</h2>", _per_label(results, labels)]
    body += ["<h2>Summary</h2>",
             '<p class="meta">Flagged records first, most urgent finding first (the bundle&#x27;s priorities). '
             "Click a column heading to sort; hover a finding&#x27;s name for its code name and threshold.</p>",
             _summary_table(ordered, labels)]
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
    fl = sorted(flagged, key=lambda r: _record_key(r, labels))
    body += [_flagged_section(r, out_dir, labels, ctx.identifiers) for r in fl] or ["<p>No record was flagged.</p>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>ECG screening: {_e(ctx.bundle_name)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + f"\n<script>{_JS}</script>\n</body></html>\n")


def write_report(path: Path, results: Sequence[RecordResult], ctx: ReportContext) -> Path:
    path.write_text(render_report(results, ctx, path.parent), encoding="utf-8")
    return path
