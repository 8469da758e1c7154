"""The documentation stays true: links resolve, generated tables match their result files, every
result file is shown somewhere, and the README stays short.

Figures in docs/ are never typed by hand: ``make results`` (scripts/make_results.py) renders them
from docs/results/*.json, and ``--check`` fails when a rerun moved a number the page still shows.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

PAGES = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "examples").rglob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
RESULTS = REPO / "docs" / "results"


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading.strip()).lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", page.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*)", line)
        if m:
            s = slug(m.group(1))
            n = seen.get(s, 0)
            seen[s] = n + 1
            found.add(s if n == 0 else f"{s}-{n}")
        found.update(re.findall(r'<a (?:name|id)="([^"]+)"', line))
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code is not a link
    return [a or b for a, b in LINK.findall(text)]


def test_slugs_follow_github():
    assert slug("Results") == "results"
    assert slug("The simulator: `edge-ecg monitor-sim CAPTURE`") == "the-simulator-edge-ecg-monitor-sim-capture"
    assert slug("VT/VF, AF & QRS (out of fold)") == "vtvf-af--qrs-out-of-fold"


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(REPO)} -> {target}"
            if not dest.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{where} (no such heading)")
    assert not broken, "\n".join(broken)


def test_readme_is_short():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 250, f"README.md has {lines} lines: move detail into docs/"


def test_generated_tables_match_their_result_files():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_results.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"run `make results` and commit the pages:\n{proc.stdout}{proc.stderr}"


def test_every_result_file_is_shown_in_a_page():
    shown = set()
    for page in PAGES:
        shown.update(re.findall(r"from `docs/results/([\w.-]+)\.json`", page.read_text()))
    files = {p.stem for p in RESULTS.glob("*.json")}
    assert files, "docs/results/ holds no result files"
    assert not files - shown, f"result files no table renders: {sorted(files - shown)}"


def test_check_catches_a_figure_that_moved(tmp_path):
    """A rerun that changes a number makes ``--check`` fail until the page is regenerated."""
    pages = [p for p in (REPO / "docs").glob("*.md") if "<!-- results: " in p.read_text()]
    if not pages:
        pytest.skip("no generated tables yet")
    docs, results = tmp_path / "docs", tmp_path / "results"
    docs.mkdir()
    shutil.copytree(RESULTS, results)
    page = pages[0]
    shutil.copy(page, docs / page.name)
    name = re.search(r"from `docs/results/([\w.-]+)\.json`", page.read_text()).group(1)
    env = json.loads((results / f"{name}.json").read_text())
    env["commit"] = "0" * 40  # any change to what the table shows
    (results / f"{name}.json").write_text(json.dumps(env))
    script = [sys.executable, str(REPO / "scripts" / "make_results.py"), "--docs", str(docs), "--results", str(results)]
    check = subprocess.run([*script, "--check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 1 and "stale" in check.stdout, check.stdout + check.stderr
    assert subprocess.run(script, capture_output=True, text=True, timeout=120).returncode == 0
    assert subprocess.run([*script, "--check"], capture_output=True, text=True, timeout=120).returncode == 0
    assert "000000000" in (docs / page.name).read_text()
