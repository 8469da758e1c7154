"""Regenerate every results table in docs/ from docs/results/*.json (``make results``).

A docs page marks a generated table like this::

    <!-- results: qrs-mitdb-ds1 -->
    ...generated lines, never edited by hand...
    <!-- /results -->

The name after ``results:`` picks a renderer in ``RENDERERS`` (``edge_ecg.results_tables``),
which turns that result file (or files) into Markdown with a line saying which command, commit,
machine and date produced it. ``--check`` changes nothing and exits 1 when a page's table no
longer matches its JSON (the test suite runs it), so a rerun that moves a number cannot leave a
stale figure in the docs.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge_ecg.results_tables import RENDERERS, render  # noqa: E402

BLOCK = re.compile(r"(<!-- results: (?P<name>[\w.:-]+) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def regenerate(text: str, results_dir: Path) -> tuple[str, list[str]]:
    """``text`` with every marked block re-rendered; also the names of blocks that changed."""
    changed: list[str] = []

    def sub(m: re.Match) -> str:
        body = render(m.group("name"), results_dir).rstrip("\n") + "\n"
        if body != m.group("body"):
            changed.append(m.group("name"))
        return m.group(1) + body + m.group(4)

    return BLOCK.sub(sub, text), changed


def pages(docs: Path) -> list[Path]:
    """The pages under ``docs`` and the README beside it."""
    return sorted(p for p in [*docs.rglob("*.md"), docs.parent / "README.md"] if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    ap.add_argument("--docs", type=Path, default=REPO / "docs")
    ap.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    ap.add_argument("--list", action="store_true", help="list the table names and exit")
    args = ap.parse_args(argv)
    if args.list:
        print("\n".join(sorted(RENDERERS)))
        return 0
    stale = []
    for page in pages(args.docs):
        text = page.read_text()
        new, changed = regenerate(text, args.results)
        if not changed:
            continue
        rel = page.relative_to(args.docs.parent)
        stale += [f"{rel}: {name}" for name in changed]
        if not args.check:
            page.write_text(new)
    for line in stale:
        print(("stale " if args.check else "updated ") + line)
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
