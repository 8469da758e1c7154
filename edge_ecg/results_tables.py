"""Markdown tables for docs/, made from result files (see ``edge_ecg.results``).

Each renderer takes the envelopes of the result files it needs and returns Markdown lines;
``render`` adds one line saying which command, commit, machine and date produced the figures.
``scripts/make_results.py`` (``make results``) puts the output between a page's
``<!-- results: NAME -->`` and ``<!-- /results -->`` markers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edge_ecg.results import RESULTS_DIR, read_result

Renderer = Callable[[Callable[[str], dict[str, Any]]], list[str]]
RENDERERS: dict[str, Renderer] = {}


def renderer(name: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[name] = fn
        return fn

    return register


def provenance(env: dict[str, Any]) -> str:
    """One line: what produced a result file, on what, when."""
    if "command" not in env:  # a file written before the envelope existed
        return f"<sub>from `docs/results/{env.get('name')}.json` (written before result files recorded their command, commit and machine).</sub>"
    m = env.get("machine") or {}
    sha = (env.get("commit") or "unknown")[:9] + (" (uncommitted changes)" if env.get("dirty") else "")
    where = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores" + (f", {m['gpu']}" if m.get("gpu") else "")
    return f"<sub>`{env.get('command', '?')}` at commit {sha} on {where}, {str(env.get('date', '?'))[:10]}; from `docs/results/{env.get('name')}.json`.</sub>"


class Loader:
    """What a renderer reads result files through: ``load(name)`` returns one envelope (and
    records it for the provenance lines); ``available()`` lists every result file's name."""

    def __init__(self, results_dir: str | Path | None = None) -> None:
        self.results_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
        self.used: dict[str, dict[str, Any]] = {}

    def __call__(self, result: str) -> dict[str, Any]:
        if result not in self.used:
            self.used[result] = read_result(result, self.results_dir)
        return self.used[result]

    def available(self) -> list[str]:
        return sorted(p.stem for p in self.results_dir.glob("*.json"))

    def peek(self, result: str) -> dict[str, Any]:
        """An envelope read without adding a provenance line (for an index of files)."""
        return read_result(result, self.results_dir)


def render(name: str, results_dir: str | Path | None = None) -> str:
    """The Markdown for table ``name``, with a provenance line per result file it read."""
    if name not in RENDERERS:
        raise KeyError(f"no results table named {name!r} (known: {', '.join(sorted(RENDERERS))})")
    load = Loader(results_dir)
    lines = RENDERERS[name](load)
    if load.used:
        lines += [""] + [provenance({"name": key, **env}) for key, env in load.used.items()]
    return "\n".join(lines) + "\n"


# -- helpers for renderers ------------------------------------------------------------------------

def pct(x: float | None, digits: int = 1) -> str:
    """A fraction as a percentage that never rounds up to 100 (or down to 0) when it is not."""
    if x is None:
        return "-"
    v = 100.0 * float(x)
    s = f"{v:.{digits}f}"
    if float(s) >= 100.0 and v < 100.0:
        s = f"{100.0 - 10 ** -digits:.{digits}f}"
    elif float(s) <= 0.0 and v > 0.0:
        s = f"{10 ** -digits:.{digits}f}"
    return s


def num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{float(x):.{digits}f}"


def interval(est: dict[str, Any] | float | None, digits: int = 3) -> str:
    """``{"value", "low", "high"}`` as ``0.912 [0.871, 0.944]``; a bare number as itself."""
    if est is None:
        return "-"
    if isinstance(est, dict):
        v, lo, hi = est.get("value"), est.get("low"), est.get("high")
        if lo is None or hi is None:
            return num(v, digits)
        return f"{num(v, digits)} [{num(lo, digits)}, {num(hi, digits)}]"
    return num(est, digits)


def with_ci(value: float | None, lo_hi: Any, digits: int = 3) -> str:
    """A value and its ``[low, high]`` pair as ``interval`` writes them (``-`` pair: the value alone)."""
    lo, hi = lo_hi if lo_hi else (None, None)
    return interval({"value": value, "low": lo, "high": hi}, digits)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


@renderer("display-bench")
def _display_bench(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """``bench/bench_display.py``: page latency, dropped frames and serving CPU, 12 leads at 500 Hz."""
    env = load("display-bench")
    r = env["results"]
    page = r["with_display"]["page"]
    a, b = r["with_display"], r["without_display"]
    rows = [
        ["sample -> drawn on the page", f"p50 {page['draw_ms_p50']} ms, p95 {page['draw_ms_p95']} ms", "p95 <= 250 ms"],
        ["sample -> received by the page", f"p50 {page['recv_ms_p50']} ms, p95 {page['recv_ms_p95']} ms", "-"],
        [f"alarm event -> banner ({page['alarm_events']} events)", f"p50 {page['alarm_ms_p50']} ms, max {page['alarm_ms_max']} ms", "<= 500 ms"],
        ["dropped frames at 60 fps, 12 leads", f"{page['dropped_frames_pct']}% ({page['raf_missed']} of {page['raf_frames'] + page['raf_missed']})", "<= 5%"],
        ["page script time per frame (12-lead sweep)", f"p50 {page.get('frame_script_ms_p50')} ms, p95 {page.get('frame_script_ms_p95')} ms", "well under 16.7 ms"],
        ["daemon CPU for serving: the display's threads", f"{r['serving_cpu_pct_of_core_threads']}% of one core", "< 5%"],
        ["daemon CPU: with display and page minus without", f"{r['serving_cpu_pct_of_core_a_minus_b']}% of one core ({a['process_cpu_s']} vs {b['process_cpu_s']} CPU-s in {a['wall_s']} s)", "< 5%"],
    ]
    head = [f"{r['input']}; {r['seconds']:.0f} s per run; page {r['page_size']}; load average before {r.get('load_average_before')} and after {r.get('load_average_after')} (1, 5, 15 min; the machine has {env.get('machine', {}).get('cores', '?')} cores).", ""]
    return head + table(["measure", "measured", "target"], rows)


# -- the daemon's fault-injection suite (tests/test_faults.py) --------------------------------------

@renderer("faults")
def faults_table(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """docs/faults.md: what each injected fault measured (``EDGE_ECG_RESULTS=1 pytest tests/test_faults.py``)."""
    r = load("faults")["results"]
    rows = []
    if "1_jumped_frame" in r:
        x = r["1_jumped_frame"]
        rows.append(["1", "jumped frame", f"stream ran to {x['stream_end_s']:.1f} s of 60; VT (onset {x['vt_onset_s']:.1f} s) alarmed "
                     f"{x['vt_latency_s']:.1f} s after onset (budget 10 s); `signal_lost` raised {x['signal_lost_raised']} times"])
    if "2_full_disk" in r:
        x = r["2_full_disk"]
        rows.append(["2", "full disk", f"{x['filesystem']}: VT raised and audio `{x['audio_while_full']}` while full; `storage_failed` "
                     f"({x['storage_failed_priority']}) raised; {x['events_held_then_written']} events held in memory, then written "
                     + ("in order (`seq` contiguous)" if x["seq_contiguous"] else "OUT OF ORDER")
                     + f"; state directory {x['state_bytes'] / 1024:.0f} KiB of {x['fs_bytes'] / 1024:.0f} KiB with {x['evidence_pngs_kept']} evidence PNGs"])
    if "3_slow_hook" in r:
        x = r["3_slow_hook"]
        rows.append(["3", f"{x['hook_s']} s hook", f"{x['alarm_changes']} alarm changes, {x['high_changes']} high priority: {x['high_delivered']} of "
                     f"{x['high_changes']} reached the hook, the last {x['high_delay_max_s']:.1f} s after it was logged (changes of one alarm go "
                     f"in order; each call killed after {x['hook_timeout_s']} s); {x['coalesced_logged']} coalesced and {x['dropped_logged']} "
                     f"dropped lower-priority changes, each logged as `hook_dropped`"])
    if "4_sigkill_restart" in r:
        x = r["4_sigkill_restart"]
        vt = x["vt_after_restart"]
        flags = ", ".join(f"{k}: {str(v).lower()}" for k, v in vt.items())
        rows.append(["4", "SIGKILL, restart", f"VT after the restart: {flags}; audio `{x['audio_after_restart']}`; `restarted` event names "
                     f"{', '.join(x['restarted_event_names'])}; the ack logged with origin via {x['ack_origin']['via']}, uid, pid, process name; "
                     f"seccomp: {x['seccomp']}" + (f"; `systemd-analyze security` exposure {x['exposure']}" if "exposure" in x else "")])
    if "5_corrupt_bundle" in r:
        x = r["5_corrupt_bundle"]
        rows.append(["5", "corrupt bundle", f"`model_unavailable` raised at t={x['model_unavailable_t']:.1f} s ({x['reason']}...); VT alarmed at "
                     + " s and ".join(f"{t:.1f}" for t in x["vt_raised_t"]) + " s without the model"])
    if "6_control_socket" in r:
        x = r["6_control_socket"]
        rows.append(["6", "control socket", f"NaN pause refused (\"{x['nan_pause']}\"); {x['answered']} of {x['concurrent_clients']} simultaneous "
                     f"`status` clients answered in {x['wall_s']:.2f} s, without retries"])
    return table(["#", "fault", "measured"], rows)


# -- screening and records (docs/records.md, docs/screening.md) -----------------------------------

@renderer("csv_memory")
def _csv_memory(load: Callable[[str], dict[str, Any]]) -> list[str]:
    r = load("csv_memory")["results"]
    return table(["CSV file", "samples x leads", "signals (float32)", "peak memory added by read_record (median)",
                  "x file size", "target", "read time (median)"],
                 [[f"{r['file_mb']:.1f} MB", f"{r['samples']} x {r['leads']}", f"{r['signals_mb']:.1f} MB",
                   f"{r['median_peak_added_mb']:.1f} MB (runs: {', '.join(f'{x:.1f}' for x in r['peak_added_mb'])})",
                   f"{r['peak_to_file_ratio']:.2f}", f"< {r['target_ratio']:g}", f"{r['median_wall_s']:.2f} s"]])


@renderer("screen_workers")
def _screen_workers(load: Callable[[str], dict[str, Any]]) -> list[str]:
    r = load("screen_workers")["results"]
    rows = []
    for s in r["setups"]:
        threads = s["threads"] if s["threads"] else "runtime default"
        rows.append([s["workers"], threads, s["records"], f"{s['median_wall_s']:.2f}", f"{s['records_per_s']:.2f}",
                     f"{s['ratio_to_first']:.2f}", ", ".join(f"{x:.1f}" for x in s["load_average_before_runs"])])
    return table(["processes", "inference threads each", "records", "wall s (median)", "records/s", "ratio to first",
                  "load average before each run"], rows)

@renderer("intellivue-decode")
def _intellivue_decode(load: Callable[[str], dict[str, Any]]) -> list[str]:
    from edge_ecg.eval.monitor_eval import decode_table

    return decode_table(load("intellivue_alarms")["results"]["decode"]).splitlines()


@renderer("intellivue-alarms")
def _intellivue_alarms(load: Callable[[str], dict[str, Any]]) -> list[str]:
    from edge_ecg.eval.monitor_eval import table

    return table(load("intellivue_alarms")["results"]["rows"]).splitlines()


@renderer("results-index")
def _results_index(load: Loader) -> list[str]:
    """Every result file: what produced it, when, on what (the page that shows it links back)."""
    rows = []
    for name in load.available():
        env = load.peek(name)
        m = env.get("machine") or {}
        sha = (env.get("commit") or "unknown")[:9] + (" (dirty)" if env.get("dirty") else "")
        rows.append([f"[`{name}`]({name}.json)".replace("](", "](results/", 1), f"`{env.get('command', '?')}`",
                     str(env.get("date", "?"))[:10], sha, f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores"])
    return table(["result file", "command", "date", "commit", "machine"], rows)


# -- classical alarms and QRS (docs/dsp-alarms.md) ------------------------------------------------

def _ci(d: dict[str, Any], key: str) -> str:
    lo, hi = d.get(f"{key}_ci95", [None, None])
    return num(d[key]) if lo is None else f"{num(d[key])} [{num(lo, 2)}-{num(hi, 2)}]"


@renderer("alarms-cv")
def _alarms_cv(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """``edge-ecg eval alarms ../shared/ecg/cinc2015-vt --cv``: out-of-fold VT alarm triage beside the references."""
    r = load("alarms-cinc2015-vt-cv")["results"]
    rows = [[name, _ci(d, "tpr"), _ci(d, "tnr"), _ci(d, "score"), d["tp"], d["fn"], d["fp"], d["tn"]] for name, d in r["rows"].items()]
    rows.append(["target (issue 12)", ">= 0.95", ">= 0.80", ">= 0.80", "", "", "", ""])
    shipped = r["rows"].get("evidence, ECG + pulse (out of fold)", {}).get("limits_all_records")
    lines = table(["detector", "TPR [95% CI]", "TNR [95% CI]", "score [95% CI]", "TP", "FN", "FP", "TN"], rows)
    streamed = [(name, d["streams"]) for name, d in r["rows"].items() if "streams" in d]
    if streamed:
        st = streamed[0][1]
        lines += ["", f"The long records that took part in the same folds ({r['streams']['folder']}: {st['records']} records, "
                  f"{st['hours']:.1f} h), held out with their fold: VT episodes (>= 5 beats) and false VT alarms.", ""]
        lines += table(["detector", "episodes", "missed", "false", "false per hour [95% CI]"],
                       [[name, d["episodes"], d["missed"], d["false"], with_ci(d["false_per_hour"], d["false_per_hour_ci95"], 2)]
                        for name, d in streamed])
    if shipped:
        lines += ["", "Limits the same procedure selects on all records (shipped): " + ", ".join(f"`{k} = {v}`" for k, v in shipped.items()) + "."]
    spread = r.get("seed_spread")
    if spread:
        seeds = next(iter(spread.values()))["seeds"]
        cell = lambda d, k: f"{num(d[k]['mean'])} [{num(d[k]['min'], 2)}-{num(d[k]['max'], 2)}]"  # noqa: E731
        lines += ["", f"The same rows over {len(seeds)} fold assignments (seeds {seeds[0]}-{seeds[-1]}; the table above is seed 0): "
                  "mean [min-max]. A single assignment moves by a few hundredths when one alarm crosses one fold's selection.", ""]
        long = all("stream_false_per_hour" in d for d in spread.values())
        head = ["detector", "TPR", "TNR", "score"] + (["long records, false VT per hour"] if long else [])
        lines += table(head, [[row, cell(d, "tpr"), cell(d, "tnr"), cell(d, "score")]
                              + ([f"{num(d['stream_false_per_hour']['mean'], 2)} [{num(d['stream_false_per_hour']['min'], 2)}-"
                                  f"{num(d['stream_false_per_hour']['max'], 2)}]"] if long else [])
                              for row, d in spread.items()])
    return lines


@renderer("alarms-triage")
def _alarms_triage(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """``edge-ecg eval alarms ../shared/ecg/cinc2015-vt --whole --bundle bundles/vt-triage``."""
    r = load("alarms-cinc2015-vt")["results"]
    t = r["triage"]
    b = t["bundle"]
    rows = [[f"{name}" + (f" ({b['name']} {b['version']}, threshold {b['threshold']:.3f}; trained on these alarms: in-sample)" if name.startswith("model") else ""),
             num(d["tpr"]), num(d["tnr"]), num(d["score"]), d["tp"], d["fn"], d["fp"], d["tn"]] for name, d in t["rows"].items()]
    oof = b.get("out_of_fold_from_provenance")
    if oof:
        rows.insert(2, ["model alone, its own out-of-fold figures (bundle provenance)", num(oof["TPR"]), num(oof["TNR"]), num(oof["score"]),
                        oof["TP"], oof["FN"], oof["FP"], oof["TN"]])
    lim = t["limits"]
    head = [f"Daemon triage config: annotate_only = {str(lim['annotate_only']).lower()}, max_steps = {lim['max_steps']}, floor = {lim['floor']}; "
            f"detector: the shipped limits streamed over whole records (in-sample: they were selected on these alarms).", ""]
    return head + table(["", "TPR", "TNR", "score", "TP", "FN", "FP", "TN"], rows)


@renderer("stream-alarms")
def _stream_alarms(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """``edge-ecg eval stream DIR --reference``: alarms per monitored hour, evidence checks on and off."""
    rows = []
    for name in ("stream-mitdb-ds1", "stream-noise-stress"):
        r = load(name)["results"]
        for label, res in (("shipped", r), ("previous detector", r.get("previous_detector"))):
            if not res:
                continue
            for kind, d in res["conditions"].items():
                if label != "shipped" and kind not in ("ventricular_tachycardia", "ventricular_fibrillation"):
                    continue
                lat = "-" if d.get("max_latency_s") is None else f"{d['max_latency_s']:.1f}"
                ci = d.get("false_per_hour_ci95")
                fph = f"{d['false_per_hour']:.2f}" + ("" if not ci else f" [{ci[0]:.2f}-{ci[1]:.2f}]")
                budget = d.get("latency_budget_s")
                rows.append([r["folder"].split("/")[-1] + f" ({res['hours']:.2f} h)", label, kind, d["raised"], d["true"], d["false"],
                             fph, d["episodes"], d["missed"], "-" if budget is None else f"{budget:g}", lat])
    out = table(["records", "detector", "condition", "raised", "true", "false", "false / h [95% CI]", "episodes", "missed",
                 "latency budget s", "max latency s"], rows)
    return out + [""] + _false_by_record(load)


def _false_by_record(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """Where the shipped detector's false alarms fall, per condition and record (errors cluster in
    a few patients: the prose that discusses them cites this line, not numbers typed by hand)."""
    lines = []
    for name in ("stream-mitdb-ds1", "stream-noise-stress"):
        r = load(name)["results"]
        counts: dict[str, dict[str, int]] = {}
        for fa in r.get("false_alarms", []):
            per = counts.setdefault(fa["kind"], {})
            per[fa["record"]] = per.get(fa["record"], 0) + 1
        parts = [f"{kind} " + ", ".join(f"{rec} {n}" for rec, n in sorted(per.items(), key=lambda x: (-x[1], x[0])))
                 for kind, per in sorted(counts.items())]
        vt = r["conditions"].get("ventricular_tachycardia", {})
        apart = (f" Of the false VT alarms, {vt.get('false_on_short_v_runs', 0)} fall on 3-4 beat ventricular runs and "
                 f"{vt.get('false_on_vf', 0)} on annotated ventricular flutter/fibrillation." if vt.get("false") else "")
        lines.append(f"False alarms by record, {r['folder'].split('/')[-1]} (shipped): " + ("; ".join(parts) or "none") + "." + apart)
    return lines


@renderer("census")
def _census(load: Loader) -> list[str]:
    """``edge-ecg eval census DIR``: alarms raised on records without rhythm annotations, per record
    class and per hour (CinC 2017's classes; PTB-XL and LUDB as one class each)."""
    names = [n for n in ("census-cinc2017", "census-ptbxl", "census-ludb") if n in load.available()]
    kinds: list[str] = []
    for name in names:
        for d in load.peek(name)["results"]["classes"].values():
            kinds += [k for k in d["conditions"] if k not in kinds]
    rows = []
    for name in names:
        r = load(name)["results"]
        for c, d in r["classes"].items():
            cells = []
            for k in kinds:
                v = d["conditions"].get(k)
                cells.append("-" if v is None else f"{v['raised']} ({v['per_hour']:.2f}/h)" if v["raised"] else "0")
            rows.append([name.removeprefix("census-"), c, d["records"], f"{d['hours']:.1f}", *cells])
    return table(["records", "class", "n", "hours", *(k.replace("_", " ") for k in kinds)], rows)


@renderer("qrs")
def _qrs(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """QRS Se/+P beside wfdb xqrs on every shared annotated set (fractions shown as %)."""
    rows = []
    for name, label in (("qrs-mitdb-ds1", "MIT-BIH DS1, gross (EC57)"), ("qrs-ludb", "LUDB lead II, annotated span")):
        try:
            r = load(name)["results"]
        except FileNotFoundError:
            continue
        g, x = r["gross"], r.get("xqrs", {}).get("gross")
        rows.append([label, r["beats"], _pct_ci(g, "se"), _pct_ci(g, "ppv"), g["fn"], g["fp"],
                     _pct_ci(x, "se"), _pct_ci(x, "ppv"), "-" if x is None else x["fn"], "-" if x is None else x["fp"]])
        if name == "qrs-mitdb-ds1":
            raw, xr = r["raw"], r.get("xqrs", {}).get("raw")
            rows.append(["MIT-BIH DS1, raw (nothing excluded)", r["beats"], _pct_ci(raw, "se"), _pct_ci(raw, "ppv"), raw["fn"], raw["fp"],
                         _pct_ci(xr, "se"), _pct_ci(xr, "ppv"), "-" if xr is None else xr["fn"], "-" if xr is None else xr["fp"]])
    ns = load("noise-stress")["results"]["records"]
    for rec, d in sorted(ns.items(), key=lambda kv: -kv[1]["snr_db"]):
        x = d.get("xqrs")
        rows.append([f"noise stress {rec} ({d['snr_db']} dB)", d["tp"] + d["fn"], pct(d["se"], 2), pct(d["ppv"], 2), d["fn"], d["fp"],
                     "-" if x is None else pct(x["se"], 2), "-" if x is None else pct(x["ppv"], 2), "-" if x is None else x["fn"], "-" if x is None else x["fp"]])
    return table(["set", "beats", "ours Se % [95% CI]", "ours +P % [95% CI]", "FN", "FP", "xqrs Se % [95% CI]", "xqrs +P % [95% CI]",
                  "FN", "FP"], rows)


def _pct_ci(d: dict[str, Any] | None, key: str) -> str:
    """A fraction as % with its record-bootstrap interval when the result file has one."""
    if d is None:
        return "-"
    ci = d.get(f"{key}_ci95")
    return pct(d[key], 2) + ("" if not ci else f" [{pct(ci[0], 2)}-{pct(ci[1], 2)}]")


@renderer("bench-dsp")
def _bench_dsp(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """``edge-ecg bench dsp``: CPU time of one core, side by side in one run."""
    r = load("bench-dsp")["results"]
    rows = [[row["what"], f"{row['cpu_s']:.3f}", f"{row['x_real_time']:.0f}", f"{row['wall_s']:.3f}", f"{row['vs_chain_1s']:.2f}x"] for row in r["rows"]]
    head = [f"Record {r['record']}: {r['seconds']:.0f} s, {r['leads']} leads at {r['fs']:g} Hz; median of {r['repeat']} runs (xqrs: 1). "
            f"Target: whole chain >= {r['target_x_real_time']}x real time at 1 s blocks: **{'met' if r['met'] else 'not met'}**."
            + (f" Load average (1 min) before / after the run: {r['load_average_1m']['before']} / {r['load_average_1m']['after']}"
               f" on {r.get('cpus')} CPUs." if r.get("load_average_1m") else ""), ""]
    return head + table(["what", "CPU s", "x real time", "wall s", "vs chain @ 1 s"], rows)

# -- atrial fibrillation (docs/dsp-alarms.md, "Atrial fibrillation") ------------------------------

def _se_sp(f: dict[str, Any], key: str) -> str:
    """``f[key]`` with its 95% record-bootstrap interval, e.g. ``0.912 [0.889, 0.934]``."""
    return with_ci(f.get(key), f.get(f"{key}_ci"))


@renderer("af")
def _af(load: Loader) -> list[str]:
    """``edge-ecg eval af``: CinC 2017 per record (out of fold), MIT-BIH DS1 per minute and per AF
    episode (alarm threshold left out per record), LUDB per record (nothing fitted on it)."""
    c = load("af-cinc2017")["results"]
    m = load("af-mitdb-ds1")["results"]
    lu = load("af-ludb")["results"]
    ours, dash, every = c["ours"], c["reference_dash2009"], c["reference_raise_every_record"]
    oof = m["alarm_out_of_fold"]
    eps = oof["episodes"]
    long_eps = [e for e in eps if e["length_s"] >= 60]
    # an episode that begins while the alarm is still on from the previous one counts at 0 s
    lat = sorted(e["raised_after_onset_s"] for e in long_eps if e["alarmed"] and e["raised_after_onset_s"] > 0)
    still_on = sum(e["alarmed"] and e["raised_after_onset_s"] == 0 for e in long_eps)
    non_af = oof["non_af_records_with_alarm"]
    n_cinc = f"{c['records']} records (AF {ours['tp'] + ours['fn']}, N+O {ours['tn'] + ours['fp']}), {c['folds']}-fold record-grouped CV"
    rows = [
        [f"CinC 2017 per record, Se: {n_cinc}", _se_sp(ours, "se"), f"Dash 2009 rule {_se_sp(dash, 'se')}; raise every record {_se_sp(every, 'se')}", ">= 0.90"],
        ["CinC 2017 per record, Sp (normal and other rhythms)", _se_sp(ours, "sp"), f"Dash 2009 rule {_se_sp(dash, 'sp')}; raise every record {_se_sp(every, 'sp')}", ">= 0.95"],
        [f"MIT-BIH DS1, AF alarm per minute, Se ({m['records']} records, {m['minutes']} min)", _se_sp(oof["per_minute"], "se"),
         f"Dash 2009 rule {_se_sp(m['reference_dash2009_per_minute'], 'se')}", "-"],
        ["MIT-BIH DS1, AF alarm per minute, Sp", _se_sp(oof["per_minute"], "sp"), f"Dash 2009 rule {_se_sp(m['reference_dash2009_per_minute'], 'sp')}", "-"],
        ["MIT-BIH DS1, AF episodes alarmed (>= 60 s long)", f"{sum(e['alarmed'] for e in long_eps)}/{len(long_eps)}"
         + (f"; raised {lat[0]:.0f}-{lat[-1]:.0f} s after onset" if lat else "")
         + (f" ({still_on} began while the alarm was still on)" if still_on else ""), "-", "all, >= 30 s after onset"],
        ["MIT-BIH DS1, AF alarms raised / false", f"{len(oof['alarms'])} / {oof['false_alarms']}", "-", "0 false"],
        [f"MIT-BIH DS1 records without AF with an AF alarm (of {oof['non_af_records']})", f"{len(non_af)}" + (f" ({', '.join(non_af)})" if non_af else ""), "-", "0"],
        [f"LUDB per record ({lu['records']} 10 s ECGs, {lu['records'] - sum(lu['records_without_decision'].values())} with a decided beat), Se / Sp, shipped model", f"{_se_sp(lu['ours'], 'se')} / {_se_sp(lu['ours'], 'sp')}",
         f"Dash 2009 rule {_se_sp(lu['reference_dash2009'], 'se')} / {_se_sp(lu['reference_dash2009'], 'sp')}", "-"],
        ["LUDB records without AF called AF / AF alarms raised", f"{len(lu['non_af_records_with_af_evidence'])} / {lu['alarms_raised']}", "-", "0 alarms"],
    ]
    return table(["check", "edge-ecg", "reference in the same run", "target"], rows)


# -- the README's headline table ------------------------------------------------------------------

@renderer("headline")
def _headline(load: Loader) -> list[str]:
    """One row per detector: the out-of-fold figure that matters most, the reference measured in
    the same run, and the target; the page with the whole table is linked."""
    rows: list[list[Any]] = []
    cv = load("alarms-cinc2015-vt-cv")["results"]["rows"]
    # without a pulse channel the daemon runs the same shipped limits, judged on the ECG alone (the
    # no-pulse continuity limit, selected inside each fold): that row is what such a source gets
    for row, label in (("evidence, ECG + pulse (out of fold)", "with a pulse channel"),
                       ("shipped limits, no pulse channel (oof)", "no pulse channel (ECG only)")):
        d = cv[row]
        rows.append([f"[VT alarm triage](docs/dsp-alarms.md#results), CinC 2015, {label}",
                     f"TPR {with_ci(d['tpr'], d.get('tpr_ci95'))}, TNR {with_ci(d['tnr'], d.get('tnr_ci95'))}",
                     f"raise every alarm: score {num(cv['raise every alarm']['score'])}; previous detector TNR {num(cv['previous detector (beat rule alone)']['tnr'])}",
                     "TPR >= 0.95, TNR >= 0.80"])
    # DS1 takes part in the limits' selection: its out-of-fold figure is the one to quote (the
    # streamed figure with the shipped limits, on the page, is in-sample)
    long = cv["evidence, ECG + pulse (out of fold)"].get("streams")
    prev = cv["previous detector (beat rule alone)"].get("streams")
    if long:
        rows.append([f"[False VT alarms](docs/dsp-alarms.md#results), MIT-BIH DS1 streamed ({long['hours']:.1f} h), out of fold",
                     f"{with_ci(long['false_per_hour'], long['false_per_hour_ci95'], 2)} per hour; {long['missed']} of {long['episodes']} runs >= 5 beats missed",
                     f"previous detector: {num(prev['false_per_hour'], 2)} per hour" if prev else "-",
                     "<= 0.5 per hour, none missed"])
    af = load("af-cinc2017")["results"]
    o, ref = af["ours"], af["reference_dash2009"]
    rows.append([f"[Atrial fibrillation](docs/dsp-alarms.md#atrial-fibrillation), CinC 2017 per record ({af['records']})",
                 f"Se {with_ci(o['se'], o.get('se_ci'))}, Sp {with_ci(o['sp'], o.get('sp_ci'), 4)}",  # 0.9495 is not 0.95
                 f"Dash 2009 rule: Se {num(ref['se'])}, Sp {num(ref['sp'])}", "Se >= 0.90, Sp >= 0.95"])
    q = load("qrs-mitdb-ds1")["results"]
    g, x = q["gross"], q["xqrs"]["gross"]
    rows.append([f"[QRS detection](docs/dsp-alarms.md#results), MIT-BIH DS1 ({q['beats']} beats)",
                 f"Se {pct(g['se'], 2)}%, +P {pct(g['ppv'], 3)}%" + (" [{}, {}]%".format(*(pct(v, 2) for v in g["ppv_ci95"])) if g.get("ppv_ci95") else ""),  # 99.798 is not 99.8
                 f"wfdb xqrs: Se {pct(x['se'], 2)}%, +P {pct(x['ppv'], 2)}%", "+P >= 99.8%"])
    af_b = load("bundle-af")["results"]["task_figures"]["cinc2017_records"]
    rows.append(["[`af` bundle (HeartBEiT)](docs/factory.md), CinC 2017 recordings (finding only)",
                 f"AUROC(AF) {interval(af_b['auroc_af'])}", "the classical AF detector above", "AUROC >= 0.97"])
    tw = load("bundle-12lead-screen")["results"]["task_figures"]
    rows.append(["[`12lead-screen` bundle](docs/factory.md), PTB-XL + LUDB (finding only)",
                 f"macro AUROC {interval(tw['cv_macro_auroc'])}; PTB-XL fold 9 {interval(tw['holdout']['macro_auroc'])}", "-",
                 "macro AUROC >= 0.85"])
    return table(["detector, data", "edge-ecg (out of fold, 95% interval)", "reference, same run", "target"], rows)


# -- models and training (docs/factory.md) -------------------------------------------------------------

ALARM_FLOORS = {"min_sensitivity": 0.90, "min_specificity": 0.95}  # [alarms.models] defaults (edge_ecg.service.config)


def _default_point(label: dict[str, Any]) -> dict[str, Any] | None:
    """The operating point at the label's default threshold (the bundle lists it first)."""
    ops = label.get("operating_points") or []
    return ops[0] if ops else None


def _verdict(label: dict[str, Any]) -> str:
    """What the daemon does with the label at the default floors (``alarm_gate`` on point values)."""
    if label.get("priority") == "none":
        return "finding (no alarm priority)"
    if not label.get("alarm_capable"):
        return "finding (not alarm-capable)"
    op = _default_point(label)
    if op is None:
        return "finding (no validated point)"
    se, sp = op["sensitivity"].get("value"), op["specificity"].get("value")
    ok = se is not None and sp is not None and se >= ALARM_FLOORS["min_sensitivity"] and sp >= ALARM_FLOORS["min_specificity"]
    return "**alarm**" if ok else "finding (below the floors)"


def _bundle_table(name: str) -> Renderer:
    def render_bundle(load: Callable[[str], dict[str, Any]]) -> list[str]:
        r = load(name)["results"]
        t = r["training"]
        data = t.get("data", {})
        ft = t.get("finetune", {})
        rows = []
        for lab in r["labels"]:
            n = lab["name"]
            m = r["metrics"].get(n, {})
            v = (r.get("validation") or {}).get(n, {})
            cal = v.get("calibration", {})
            op = _default_point(lab) or {}
            rows.append([n, f"{m.get('n', '-')} ({m.get('positives', '-')})", interval(m.get("auroc")), interval(m.get("auprc")),
                         f"{interval(cal.get('ece'))} (raw {num((cal.get('ece_uncalibrated') or {}).get('value'))})",
                         op.get("name", "-"), interval(op.get("sensitivity")), interval(op.get("specificity")), _verdict(lab)])
        a = r["int8_vs_fp32"]
        trunk = "random-init" if t.get("init") == "random" else "MIM-pretrained"
        mode = ("head only (fc_norm + head) on the frozen " if ft.get("head_only") else
                f"the last {ft.get('train_blocks')} block(s) + head on the frozen ") if ft.get("train_blocks") else "full fine-tuning of the "
        out = [f"`{name[len('bundle-'):]}` {r['version']}: {r['bytes'] / 1e6:.1f} MB; {t['folds']}-fold record-grouped CV over "
               f"{data.get('windows', '?')} windows of {data.get('records', '?')} records; {mode}{trunk} `{ft.get('size')}` trunk at "
               f"{ft.get('img_size')} px; cross-validation {r['cv_seconds'] / 60:.1f} min; the `train bundle` run that wrote this "
               f"{r['seconds'] / 60:.1f} min (it reuses a cached cross-validation of the same config).", ""]
        out += table(["label", "windows (pos)", "AUROC [95% CI]", "AUPRC [95% CI]", "ECE calibrated [95% CI]", "default point",
                      "sensitivity [95% CI]", "specificity [95% CI]", "daemon (default floors)"], rows)
        out += ["", f"INT8 vs FP32 on the shipped model's {a['windows']} held-out windows: top-label agreement "
                    f"{a['top_label_agreement']:.4f}, decision agreement {a['decision_agreement']:.4f} (target >= 0.99), "
                    f"max abs logit difference {a['max_abs_logit_diff']}."]
        tf = r.get("task_figures") or {}
        if tf.get("cv_macro_auroc"):
            out += ["", f"Macro AUROC over labels, out of fold: {interval(tf['cv_macro_auroc'])}."]
        c = tf.get("cinc2017_records")
        if c:
            out += ["", f"CinC 2017 recordings, record level ({c['records']} recordings; {c['aggregation']}): AUROC(AF) "
                        f"{interval(c['auroc_af'])}; F1 N {interval(c['f1']['normal'])}, A {interval(c['f1']['af'])}, "
                        f"O {interval(c['f1']['other_rhythm'])}, ~ {interval(c['f1']['noise'])}; challenge score (mean F1 of N, A, O) "
                        f"{interval(c['cinc2017_score'])}.", ""]
            out += table(["AF operating point", "F1(AF) [95% CI]", "sensitivity", "specificity"],
                         [[k, interval(x["f1_af"]), interval(x.get("sensitivity")), interval(x.get("specificity"))]
                          for k, x in c.get("af_at_operating_points", {}).items()])
        h = tf.get("holdout")
        if h:
            out += ["", f"{h['name']}: {h['windows']} windows of {h['records']} patients, macro AUROC {interval(h['macro_auroc'])}; per label "
                        + ", ".join(f"{k} {interval(x['auroc'], 2)} ({x['positives']} pos)" for k, x in h["labels"].items()) + "."]
        return out

    return render_bundle


for _b in ("af", "rhythm", "12lead-screen"):
    RENDERERS[f"bundle-{_b}"] = _bundle_table(f"bundle-{_b}")


@renderer("vt-triage-decision")
def _vt_triage(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """Does vt-triage lift the classical VT detector at TPR >= 0.95 (CinC 2015, out of fold)?"""
    r = load("vt-triage-decision")["results"]
    rows = []
    for key, what in (("model_alone", "model alone"), ("detector_alone", "classical detector alone (`edge_ecg.dsp`)"),
                      ("model_or_detector", "model OR detector (alarm kept unless both call it false)")):
        x = r[key]
        rows.append([what, x["TP"], x["TN"], x["FP"], x["FN"], num(x["TPR"]), num(x["TNR"]), num(x["score"])])
    out = table(["CinC 2015 alarms, out of fold", "TP", "TN", "FP", "FN", "TPR", "TNR", "score"], rows)
    return out + ["", f"Model AUROC within folds {interval(r['auroc_within_fold'])} (bundle {r['bundle']['name']} "
                      f"{r['bundle']['version']}). Model AND detector: {r['model_and_detector']['note']}. Decision: {r['decision']}."]


@renderer("lowlabel-af")
def _lowlabel_af(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """The low-label study: AUROC(AF) per arm and label fraction, pooled over seeds."""
    r = load("lowlabel-af")["results"]
    names = {"heartbeit-mim": "HeartBEiT, MIM-pretrained (linear probe)", "heartbeit-random": "HeartBEiT, random init (linear probe)",
             "cnn1d": "1-D CNN on the signal (end to end)"}
    fracs = sorted({x["fraction"] for x in r["rows"]})
    arms = [a for a in names if any(x["arm"] == a for x in r["rows"])]
    cell = {(x["arm"], x["fraction"]): x for x in r["rows"]}
    rows = []
    for a in arms:
        row = [names[a]]
        for f in fracs:
            x = cell.get((a, f))
            row.append("not run" if x is None else f"{interval(x['auroc_pooled'])} (seeds {', '.join(str(s) for s in x['seeds'])})")
        rows.append(row)
    out = table(["arm \\ training labels"] + [f"{100 * f:g}%" for f in fracs], rows)
    if r.get("not_run"):
        out += ["", f"Not run (the time budget): {'; '.join(r['not_run'])}."]
    return out


@renderer("probe-resolution")
def _probe_resolution(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """A linear probe of the same random-init trunk at 128 and 224 px (12lead-screen task)."""
    rows = []
    for px in (128, 224):
        r = load(f"probe-12lead-screen-{px}px-random")["results"]
        per = r["auroc_pooled_per_label"]
        rows.append([f"{px} px", r["windows"], interval(r["mean_auroc"])] + [num(per.get(k), 2) for k in per] + [f"{r['feature_seconds']:.0f} s"])
    labels = list(load("probe-12lead-screen-128px-random")["results"]["auroc_pooled_per_label"])
    return table(["images", "windows", "mean AUROC [95% CI]"] + labels + ["features"], rows)


@renderer("pretrain-cpu")
def _pretrain_cpu(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """The CPU corpus and pretraining run (``edge-ecg train pretrain configs/pretrain.toml --report``)."""
    r = load("pretrain-cpu")["results"]
    c, p = r["corpus"], r["pretraining"]
    by_source: dict[str, dict[str, int]] = {}
    for part, x in c["parts"].items():
        src, layout = part.rsplit(".", 1)
        by_source.setdefault(src, {})[layout] = x["images"]
    layouts = list(c["layouts"])
    rows = [[s] + [by_source[s].get(l, 0) for l in layouts] + [sum(by_source[s].values())] for s in by_source]
    cfg = p["config"]
    out = table(["source"] + [f"{l} images" for l in layouts] + ["total"], rows)
    out += ["", f"Corpus: {c['images']} images in {c['shards']} shards, rendered in {c['render_seconds'] / 60:.0f} min. "
                f"Pretraining: `{cfg.get('size')}` at {cfg.get('img_size')} px, {cfg.get('steps')} steps x {cfg.get('batch_size')} = "
                f"{p['images_seen']} images seen ({p['images_seen'] / max(1, c['images']):.1%} of one pass), world size {p['world_size']}, "
                f"{p['device']}; masked-patch L1 loss {num(p['first_loss'])} (step {p['history'][0]['step']}) -> {num(p['final_loss'])} "
                f"(step {p['history'][-1]['step']}); the last resumed run took {p['seconds_this_run'] / 60:.0f} min."]
    return out


@renderer("models-targets")
def _models_targets(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """Issue targets of the 0.3 models beside what was measured (out of fold, 95% intervals)."""
    def met(ok: bool | None) -> str:
        return "-" if ok is None else ("met" if ok else "**not met**")

    rows = []
    af = load("bundle-af")["results"]
    c = (af.get("task_figures") or {}).get("cinc2017_records", {})
    a_af = af["metrics"]["af"]["auroc"]
    rows.append(["`af`: AUROC(AF), windows (CinC 2017 + MIT-BIH AF)", ">= 0.97", interval(a_af), met(a_af["value"] >= 0.97)])
    if c:
        rows.append(["`af`: AUROC(AF), CinC 2017 recordings", ">= 0.97", interval(c["auroc_af"]), met(c["auroc_af"]["value"] >= 0.97)])
        best = max(c.get("af_at_operating_points", {}).items(), key=lambda kv: kv[1]["f1_af"]["value"] or 0.0, default=None)
        rows.append(["`af`: F1(AF), CinC 2017 recordings (argmax class)", ">= 0.85", interval(c["f1"]["af"]), met(c["f1"]["af"]["value"] >= 0.85)])
        if best:
            rows.append([f"`af`: F1(AF) at the best operating point ({best[0]})", ">= 0.85", interval(best[1]["f1_af"]),
                         met(best[1]["f1_af"]["value"] >= 0.85)])
        rows.append(["`af`: CinC 2017 score (mean F1 of N, A, O)", "report (best challenge entries 0.83, hidden test)",
                     interval(c["cinc2017_score"]), "-"])
    tl = load("bundle-12lead-screen")["results"]
    tf = tl.get("task_figures") or {}
    if tf.get("cv_macro_auroc"):
        rows.append(["`12lead-screen`: macro AUROC, CV", ">= 0.85", interval(tf["cv_macro_auroc"]), met(tf["cv_macro_auroc"]["value"] >= 0.85)])
    if tf.get("holdout"):
        h = tf["holdout"]["macro_auroc"]
        rows.append(["`12lead-screen`: macro AUROC, PTB-XL fold 9", ">= 0.85", interval(h), met(h["value"] >= 0.85)])
    rh = load("bundle-rhythm")["results"]
    for n, m in rh["metrics"].items():
        rows.append([f"`rhythm`: AUROC({n})", "report", interval(m["auroc"]), "-"])
    for name, r in (("af", af), ("rhythm", rh), ("12lead-screen", tl)):
        for n, v in (r.get("validation") or {}).items():
            rows.append([f"`{name}`: ECE({n}), calibrated (raw)", "report", f"{interval(v['calibration']['ece'])} "
                         f"({num(v['calibration']['ece_uncalibrated']['value'])})", "-"])
        ag = r["int8_vs_fp32"]["decision_agreement"]
        rows.append([f"`{name}`: INT8/FP32 decision agreement", ">= 0.99", num(ag, 4), met(ag >= 0.99)])
        rows.append([f"`{name}`: bundle size", "<= 25 MB", f"{r['bytes'] / 1e6:.1f} MB", met(r["bytes"] <= 25e6)])
    vt = load("vt-triage-decision")["results"]
    rows.append(["`vt-triage`: lifts the detector's CinC 2015 score at TPR >= 0.95", "else removed",
                 f"model OR detector {num(vt['model_or_detector']['score'])} vs detector {num(vt['detector_alone']['score'])}",
                 "not lifted: removed from the default config and the demo"])
    return table(["target", "asked", "measured [95% CI]", ""], rows)


@renderer("lowlabel-0.2")
def _lowlabel_02(load: Callable[[str], dict[str, Any]]) -> list[str]:
    """The 0.2 low-label study (H100, full fine-tuning; files written before the results envelope)."""
    rows = []
    for task in ("rhythm", "12lead-screen"):
        env = load(f"lowlabel-{task}")
        r = env.get("results", env)
        cell = {(x["fraction"], x["init"]): x for x in r["rows"]}
        for frac in sorted({x["fraction"] for x in r["rows"]}):
            pre, rnd = cell.get((frac, "pretrained")), cell.get((frac, "random"))
            rows.append([task, f"{100 * frac:g}%", pre["train_windows"] if pre else "-",
                         interval(pre["mean_auroc"]) if pre else "-", interval(rnd["mean_auroc"]) if rnd else "-"])
    return table(["task (0.2 labels)", "training labels", "training windows", "pretrained: mean AUROC [95% CI]",
                  "random init: mean AUROC [95% CI]"], rows)
