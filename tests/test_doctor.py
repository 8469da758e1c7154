"""``edge-ecg doctor`` on this machine: a healthy bench passes (a real ``cart-sim`` on a pty as the
cart, a signed bundle), and each broken part fails with its fix and a non-zero exit status.
Also the installed-path conventions every part relies on, and ``edge-ecg --version``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.doctor import check_cart, check_config, DoctorContext, run_doctor
from edge_ecg.paths import DEFAULT, install_paths
from edge_ecg.signing import generate_keypair, sign_bundle
from helpers.bundles import copy_bundle
from helpers.daemon import Cart, cli_env

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(tmp_path_factory, mitdb_dir):
    from edge_ecg.records import read_record

    root = tmp_path_factory.mktemp("bench")
    key, pub, _ = generate_keypair(root / "keys" / "factory.key")
    trust = root / "trusted.d"
    trust.mkdir()
    shutil.copy(pub, trust / "factory.pub")
    bundle = copy_bundle(root / "vt-triage")
    sign_bundle(bundle, key)
    rec = read_record(mitdb_dir / "101").slice(0, 360 * 60)
    cart = Cart.of(rec, root / "rec", 1.0, faults="leadoff@0+120:RA")  # electrodes off: the doctor must say so
    cfg = root / "edge-ecg.toml"
    cfg.write_text("\n".join([f'source = "serial:{cart.path}"', "[trust]", f'keys = "{trust}"', "require_signature = true",
                              "[[bundle]]", f'path = "{bundle}"', 'role = "triage"', "[sinks]", f'state_dir = "{root}/state"']) + "\n")
    yield {"root": root, "cfg": cfg, "trust": trust, "bundle": bundle, "key": key, "cart": cart}
    cart.close()


def env_for(bench) -> dict:
    env = cli_env()
    env.update({"EDGE_ECG_CONFIG": str(bench["cfg"]), "EDGE_ECG_BUNDLE_STORE": str(bench["root"] / "store"),
                "EDGE_ECG_PREFIX": str(bench["root"] / "prefix")})
    return env


def test_a_healthy_bench_passes_with_the_cart_on_a_pty(bench):
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "doctor", "--json", "--port-timeout", "8"], cwd=REPO, env=env_for(bench),
                         capture_output=True, text=True, timeout=180)
    report = json.loads(out.stdout)
    by = {f["check"]: f for f in report["findings"]}
    print("\n".join(f"{f['status']:4} {f['check']}: {f['detail']}" for f in report["findings"]))
    assert out.returncode == 0 and report["ok"], out.stdout + out.stderr
    assert by["cart port"]["status"] == "pass" and "HELLO" in by["cart port"]["detail"] and "360 Hz" in by["cart port"]["detail"]
    assert by["cart sample rate"]["status"] == "pass"
    assert by["cart lead-off"]["status"] == "warn" and "attach the electrodes" in by["cart lead-off"]["fix"]
    assert by["bundle vt-triage"]["status"] == "pass" and "signed by factory" in by["bundle vt-triage"]["detail"]
    assert by["trust"]["status"] == "pass" and by["config"]["status"] == "pass" and by["clock"]["status"] == "pass"
    assert by["systemd unit"]["status"] == "skip"  # no unit installed from a checkout


def test_broken_parts_fail_with_their_fix(bench, tmp_path):
    bad = tmp_path / "trusted.d"
    shutil.copytree(bench["trust"], bad)
    shutil.copy(bench["key"], bad / "factory.key")  # someone copied the factory key onto the unit
    unsigned = copy_bundle(tmp_path / "unsigned")
    cfg = tmp_path / "edge-ecg.toml"
    cfg.write_text("\n".join([f'source = "serial:{tmp_path}/no-such-cart"', "[trust]", f'keys = "{bad}"', "require_signature = true",
                              "[[bundle]]", f'path = "{unsigned}"', 'role = "triage"', "[sinks]", f'state_dir = "{tmp_path}/state"']) + "\n")
    findings = {f.check: f for f in run_doctor(cfg, paths=install_paths({"EDGE_ECG_BUNDLE_STORE": str(tmp_path / "store")}), port_timeout_s=1)}
    assert findings["trust"].status == "fail" and "private" in findings["trust"].detail and "rotate" in findings["trust"].fix
    assert findings["bundle unsigned"].status == "fail" and "not signed" in findings["bundle unsigned"].detail
    assert "bundle install" in findings["bundle unsigned"].fix
    assert findings["cart port"].status == "fail" and "does not exist" in findings["cart port"].detail and "udev" in findings["cart port"].fix
    cfg.write_text("source = 3\n")
    ctx = DoctorContext(cfg, DEFAULT)
    (f,) = check_config(ctx)
    assert f.status == "fail" and "source" in f.detail and "--check" in f.fix
    assert check_cart(ctx)[0].status == "skip"
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "doctor", "--config", str(cfg)], cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "NOT fit for the bedside" in out.stdout and "fix:" in out.stdout, out.stdout


def test_version_shows_build_bundles_and_engines(bench):
    out = subprocess.run([sys.executable, "-m", "edge_ecg", "--version"], cwd=REPO, env=env_for(bench), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("edge-ecg 0.1.0 build 0.1.0+g") and "(checkout)" in lines[0]
    assert "onnxruntime" in lines[1] and "tensorrt" in lines[1]
    assert any(l.startswith("bundle vt-triage 0.2.0 (triage; signed by factory") for l in lines), out.stdout
    assert any("engines: none cached" in l for l in lines)


def test_installed_paths_agree_everywhere():
    """The unit, the default config and the maintainer scripts name the paths edge_ecg.paths holds."""
    unit = (REPO / "systemd" / "edge-ecg.service").read_text()
    assert f"ExecStart={DEFAULT.executable} run --config {DEFAULT.config}" in unit
    assert "Wants=edge-ecg-bundles.service" in unit and f"User={DEFAULT.user}" in unit
    recover = (REPO / "systemd" / "edge-ecg-bundles.service").read_text()
    assert f"ExecStart=-{DEFAULT.executable} bundle recover --no-restart --quiet --config {DEFAULT.config}" in recover
    assert "StateDirectory=" + DEFAULT.state_dir.name in unit
    from edge_ecg.service.config import load_config

    cfg = load_config(REPO / "systemd" / "edge-ecg.toml")
    assert cfg.trust.required and cfg.trust.keys_dir == DEFAULT.trust_dir
    assert cfg.bundles and all(b.path.parent == DEFAULT.bundle_store for b in cfg.bundles)
    assert cfg.sinks.state_dir == DEFAULT.state_dir
    for script in ("postinst.in", "prerm.in", "postrm.in"):
        text = (REPO / "release" / "debian" / script).read_text()
        assert "/opt/edge-ecg" not in text and "/var/opt" not in text and "/etc/edge-ecg" not in text, f"{script} hard-codes a path"


def test_doctor_checks_every_runtime_dependency():
    """Each of pyproject's runtime dependencies is imported by the doctor's package check."""
    import re

    from edge_ecg.doctor import RUNTIME_MODULES
    from edge_ecg.service.config import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=;\[ ]", d, 1)[0].strip().lower() for d in deps if "python_version < '3.11'" not in d}
    assert names == set(RUNTIME_MODULES), names ^ set(RUNTIME_MODULES)
