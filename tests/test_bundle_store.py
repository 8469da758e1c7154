"""A kill during ``edge-ecg bundle install`` leaves the previous bundle active.

The installer is a real process killed at a real moment (read from its own progress lines):
during verification (before the switch: nothing the daemon reads has changed), and after the
switch while it waits for the daemon (``kill -9``: the transaction record makes ``bundle
recover``, which the unit runs before every start, put the previous bundle back; ``SIGTERM``: the
installer puts it back itself). The restart command here is a stand-in that only takes time
(``sleep``): the real restart and health check under systemd are in ``test_release_deb.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.signing import generate_keypair, sign_bundle
from helpers.bundles import copy_bundle
from helpers.daemon import cli_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    """A store with vt-triage 0.x active, a signed newer version to install, and a config that runs it."""
    root = tmp_path_factory.mktemp("unit")
    key, pub, _ = generate_keypair(root / "keys" / "factory.key")
    trust = root / "trusted.d"
    trust.mkdir()
    shutil.copy(pub, trust / "factory.pub")
    v1 = copy_bundle(root / "v1" / "vt-triage")
    sign_bundle(v1, key)
    v2 = copy_bundle(root / "v2" / "vt-triage")
    (v2 / "bundle.toml").write_text((v2 / "bundle.toml").read_text().replace('version = "', 'version = "7', 1))
    sign_bundle(v2, key)
    store = root / "store"
    cfg = root / "edge-ecg.toml"
    cfg.write_text("\n".join(['source = "replay:/nonexistent?speed=1"', "[trust]", f'keys = "{trust}"', "require_signature = true",
                              "[[bundle]]", f'path = "{store}/vt-triage"', 'role = "triage"',
                              "[sinks]", f'state_dir = "{root}/state"']) + "\n")
    out = cli("bundle", "install", v1, "--store", store, "--config", cfg, "--no-restart")
    assert out.returncode == 0, out.stdout + out.stderr
    return {"root": root, "store": store, "cfg": cfg, "v1": v1, "v2": v2, "active": (store / "vt-triage").resolve()}


def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "edge_ecg", *map(str, args)], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=timeout)


def install_until(unit, word: str, sig: int, *extra: str) -> tuple[int, list[str]]:
    """Start `bundle install` of v2, send ``sig`` to it when it prints a line containing ``word``."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_ecg", "bundle", "install", str(unit["v2"]), "--store", str(unit["store"]),
                             "--config", str(unit["cfg"]), *extra], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if word in line:
                os.kill(proc.pid, sig)
                break
        rest, _ = proc.communicate(timeout=120)
        lines += rest.splitlines()
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the stand-in restart command it may have left
        except ProcessLookupError:
            pass
        proc.wait()
    assert any(word in l for l in lines), lines
    return proc.returncode, lines


def test_kill_9_while_verifying_changes_nothing(unit):
    rc, lines = install_until(unit, "staged", signal.SIGKILL, "--no-restart")
    assert rc == -signal.SIGKILL
    assert (unit["store"] / "vt-triage").resolve() == unit["active"]
    assert not (unit["store"] / ".transaction.json").exists()
    listing = cli("bundle", "list", "--store", unit["store"], "--config", unit["cfg"])
    assert "UNCONFIRMED" not in listing.stdout and unit["active"].name in listing.stdout, listing.stdout


def test_kill_9_after_the_switch_is_undone_by_recover(unit):
    rc, lines = install_until(unit, "switched", signal.SIGKILL, "--restart-cmd", "sleep 60")
    assert rc == -signal.SIGKILL
    # killed between the switch and the health verdict: the new version is linked but unconfirmed
    assert (unit["store"] / "vt-triage").resolve() != unit["active"]
    listing = cli("bundle", "list", "--store", unit["store"], "--config", unit["cfg"])
    assert "UNCONFIRMED install" in listing.stdout, listing.stdout
    # what edge-ecg-bundles.service runs before the daemon starts again
    out = cli("bundle", "recover", "--no-restart", "--store", unit["store"], "--config", unit["cfg"])
    assert out.returncode == 0 and "undid the unconfirmed install" in out.stdout, out.stdout + out.stderr
    assert (unit["store"] / "vt-triage").resolve() == unit["active"]
    last = json.loads((unit["store"] / "history.jsonl").read_text().splitlines()[-1])
    assert last["result"] == "recovered" and "ended before the daemon was confirmed healthy" in last["reason"]


def test_sigterm_after_the_switch_switches_back_at_once(unit):
    rc, lines = install_until(unit, "switched", signal.SIGTERM, "--restart-cmd", "sleep 3", "--health-timeout", "2")
    # 1: the signal came while it waited for the daemon (it restarts the old version); 2: right after
    # the switch, before the restart: either way it switched back before exiting
    assert rc in (1, 2), lines
    assert (unit["store"] / "vt-triage").resolve() == unit["active"]
    assert not (unit["store"] / ".transaction.json").exists()
    assert any("SIGTERM" in l for l in lines), lines
    last = [json.loads(l) for l in (unit["store"] / "history.jsonl").read_text().splitlines() if '"install"' in l][-1]
    assert last["result"] == "rolled back" and "SIGTERM" in last["reason"]
