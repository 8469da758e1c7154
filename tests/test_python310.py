"""The Jetson runs Python 3.10 (JetPack 6): nothing newer than 3.10 in syntax or stdlib.

The suite runs on 3.11 here, so this reads every project source file with the 3.10 grammar and
refuses 3.11-only stdlib names; a real 3.10 interpreter, where one is found, also compiles them.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("edge_ecg", "export", "firmware_bridge", "bench", "tests")
# Modules and names that only exist from Python 3.11 on.
NEW_MODULES = {"tomllib", "wsgiref.types"}
NEW_NAMES = {("typing", "Self"), ("typing", "LiteralString"), ("typing", "Never"), ("typing", "assert_never"),
             ("typing", "reveal_type"), ("typing", "Required"), ("typing", "NotRequired"), ("enum", "StrEnum"),
             ("datetime", "UTC"), ("asyncio", "TaskGroup"), ("asyncio", "timeout"), ("hashlib", "file_digest")}


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py"))


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """True when the import sits in a try whose handler catches ImportError (a fallback exists)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
            h.type is None or "ImportError" in ast.dump(h.type) or "ModuleNotFoundError" in ast.dump(h.type)
            for h in node.handlers
        ):
            return True
        if isinstance(node, ast.If) and "version_info" in ast.dump(node.test):
            return True
    return False


def test_sources_parse_with_the_python_310_grammar():
    bad = []
    for path in _sources():
        try:
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))
        except SyntaxError as exc:
            bad.append(f"{path.relative_to(REPO)}:{exc.lineno}: {exc.msg}")
    assert not bad, "syntax newer than Python 3.10:\n" + "\n".join(bad)


def test_no_python_311_stdlib_without_a_fallback():
    bad = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                hits = [a.name for a in node.names if a.name in NEW_MODULES]
            elif isinstance(node, ast.ImportFrom):
                hits = [node.module] if node.module in NEW_MODULES else []
                hits += [f"{node.module}.{a.name}" for a in node.names if (node.module, a.name) in NEW_NAMES]
            else:
                continue
            if hits and not _guarded(node, parents):
                bad.append(f"{path.relative_to(REPO)}:{node.lineno}: {', '.join(hits)}")
    assert not bad, "Python 3.11+ stdlib used without a 3.10 fallback:\n" + "\n".join(bad)


def _python310() -> str | None:
    """A working Python 3.10: on PATH, or a pyenv install (pyenv shims answer even when absent)."""
    candidates = [shutil.which("python3.10")] + sorted(str(p) for p in (Path.home() / ".pyenv" / "versions").glob("3.10*/bin/python"))
    for exe in filter(None, candidates):
        probe = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"], capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return exe
    return None


def test_a_real_python_310_compiles_every_source(tmp_path):
    exe = _python310()
    if exe is None:
        pytest.skip("no Python 3.10 interpreter found (the grammar check above still ran)")
    files = [str(p) for p in _sources()]
    code = "import sys, py_compile\nfor f in sys.argv[1:]:\n    py_compile.compile(f, cfile=sys.argv[0] + '.pyc', doraise=True)\n"
    script = tmp_path / "compile.py"
    script.write_text(code)
    out = subprocess.run([exe, str(script), *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert sys.version_info >= (3, 10)
