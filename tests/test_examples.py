"""Every walk-through in examples/ runs as written and prints what its README says to expect.

A README's ```sh blocks are run in order, as one bash script from the repository root, with the
virtual environment's ``edge-ecg`` first on PATH and ``OUT`` set to a fresh folder; its ```text
blocks are the expected output: every line must appear in the script's output, in order, where
``...`` stands for any text (timings, paths). So the commands a newcomer copies are the ones
tested, and the output shown is output that was seen.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, SHARED

EXAMPLES = sorted(p for p in (REPO / "examples").glob("[0-9][0-9]-*/README.md"))
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(readme: Path) -> tuple[str, list[str]]:
    """The script (every sh block joined) and the expected lines (every text block)."""
    script, expected = [], []
    for m in FENCE.finditer(readme.read_text()):
        kind, body = m.group(1), m.group(2)
        if kind == "sh":
            script.append(body)
        elif kind == "text":
            expected += [line.rstrip() for line in body.splitlines() if line.strip()]
    return "\n".join(script), expected


def missing_lines(output: str, expected: list[str]) -> list[str]:
    """The expected lines not found in ``output`` in order (``...`` matches anything)."""
    pos, missing = 0, []
    for line in expected:
        pattern = ".*?".join(re.escape(part.strip()) for part in line.split("..."))
        m = re.compile(pattern).search(output, pos)
        if m is None:
            missing.append(line)
        else:
            pos = m.end()
    return missing


def test_expected_lines_are_matched_in_order():
    out = "a 1.23 s\nb done\nc 7 alarms\n"
    assert missing_lines(out, ["a ... s", "c 7 alarms"]) == []
    assert missing_lines(out, ["c 7 alarms", "a ... s"]) == ["a ... s"]
    assert missing_lines(out, ["b failed"]) == ["b failed"]


def test_every_example_has_commands_and_expected_output():
    assert len(EXAMPLES) >= 4, "examples/ should hold the numbered walk-throughs"
    for readme in EXAMPLES:
        script, expected = blocks(readme)
        assert script.strip() and expected, f"{readme.parent.name}: needs ```sh commands and ```text expected output"


@pytest.mark.slow
@pytest.mark.parametrize("readme", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_example_runs_as_written(readme, tmp_path):
    if not (SHARED / "ecg").is_dir():
        pytest.skip(f"the examples read ../shared (not present at {SHARED})")
    script, expected = blocks(readme)
    env = dict(os.environ, OUT=str(tmp_path), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONUNBUFFERED="1")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{readme.parent.name} exited {proc.returncode}:\n{output[-4000:]}"
    missing = missing_lines(output, expected)
    assert not missing, f"{readme.parent.name}: expected lines not seen {missing}\n--- output ---\n{output[-4000:]}"
