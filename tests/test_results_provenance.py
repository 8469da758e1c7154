"""Results files record the commit they were measured at, and whether the code differed from it."""

from __future__ import annotations

import subprocess

from edge_ecg import results


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


def test_rewritten_results_files_do_not_mark_the_checkout_dirty_but_code_does(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "docs" / "results").mkdir(parents=True)
    (root / "docs" / "results" / "qrs.json").write_text("{}\n")
    (root / "code.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    monkeypatch.setattr(results, "RESULTS_DIR", root / "docs" / "results")
    sha, dirty = results.commit()
    assert len(sha) == 40 and not dirty
    # an earlier evaluation of the same batch rewrote another results file: still the commit's code
    (root / "docs" / "results" / "qrs.json").write_text('{"se": 1}\n')
    assert results.commit() == (sha, False)
    (root / "code.py").write_text("x = 2\n")
    assert results.commit() == (sha, True)
