"""Signed bundles: unsigned, tampered, forged and untrusted bundles are refused before anything
changes, by ``load_bundle`` (the daemon's path), ``edge-ecg bundle install`` and ``run --check``.

The signing keys are made here, at test time, in a temporary folder: no private key is committed.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge_ecg.bundle import load_bundle
from edge_ecg.errors import BundleError, SignatureError
from edge_ecg.signing import TrustPolicy, check_signature, generate_keypair, read_signature, sign_bundle
from helpers.daemon import cli_env
from helpers.bundles import copy_bundle

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("keys")
    factory, factory_pub, _ = generate_keypair(root / "factory.key")
    other, _, _ = generate_keypair(root / "other.key")
    trust = root / "trusted.d"
    trust.mkdir()
    shutil.copy(factory_pub, trust / "factory.pub")
    return {"factory": factory, "other": other, "trust": trust}


@pytest.fixture
def signed(tmp_path, keys) -> Path:
    path = copy_bundle(tmp_path / "vt-triage")
    sign_bundle(path, keys["factory"])
    return path


def test_signed_bundle_loads_and_names_its_signer(signed, keys):
    b = load_bundle(signed, trust=TrustPolicy(keys["trust"], required=True))
    assert b.signature.status == "verified" and b.signature.signer == "factory"
    assert read_signature(signed / "bundle.sig").signer == "factory"


def test_unsigned_bundle_is_refused_where_signatures_are_required(tmp_path, keys):
    path = copy_bundle(tmp_path / "b")
    with pytest.raises(SignatureError, match="not signed"):
        load_bundle(path, trust=TrustPolicy(keys["trust"], required=True))
    # development (make demo): an unsigned bundle loads, and says so
    assert load_bundle(path, trust=TrustPolicy(keys["trust"], required=False)).signature.status == "unsigned"


def test_model_tampered_after_signing_is_refused(signed, keys):
    model = signed / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch") as exc:
        load_bundle(signed, trust=TrustPolicy(keys["trust"], required=True))
    assert "model.int8.onnx" in str(exc.value)


def test_manifest_changed_after_signing_is_refused(signed, keys):
    manifest = signed / "bundle.toml"
    manifest.write_text(manifest.read_text().replace('version = "', 'version = "9', 1))
    for required in (True, False):  # a broken signature is refused even where signatures are optional
        with pytest.raises(SignatureError, match="changed after signing"):
            load_bundle(signed, trust=TrustPolicy(keys["trust"], required=required))


def test_forged_signature_and_untrusted_key_are_refused(signed, keys, tmp_path):
    sig_path = signed / "bundle.sig"
    good = sig_path.read_text()
    sig = read_signature(sig_path)
    forged = base64.b64encode(bytes(b ^ 0xFF for b in sig.value)).decode()
    sig_path.write_text(good.replace(base64.b64encode(sig.value).decode(), forged))
    with pytest.raises(SignatureError, match="does not verify"):
        check_signature(signed, TrustPolicy(keys["trust"], required=True))
    sign_bundle(signed, keys["other"])  # a valid signature by a key the unit does not trust
    with pytest.raises(SignatureError, match="does not trust"):
        check_signature(signed, TrustPolicy(keys["trust"], required=True))
    assert check_signature(signed, TrustPolicy(keys["trust"], required=False)).status == "untrusted"


def test_private_key_is_never_trusted_or_used_from_the_trust_folder(signed, keys, tmp_path):
    trust = tmp_path / "trusted.d"
    shutil.copytree(keys["trust"], trust)
    shutil.copy(keys["factory"], trust / "factory-copy.pub")
    with pytest.raises(SignatureError, match="private key"):
        check_signature(signed, TrustPolicy(trust, required=True))
    shutil.copy(keys["factory"], trust / "factory.key")
    with pytest.raises(BundleError, match="never go on a unit"):
        sign_bundle(signed, trust / "factory.key", trust_dir=trust)


def _cli(*args, env_extra=None, timeout=180):
    env = cli_env()
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "edge_ecg", *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_bundle_install_refuses_unsigned_and_tampered_and_keeps_the_active_one(tmp_path, keys, signed):
    store = tmp_path / "store"
    env = {"EDGE_ECG_TRUST_DIR": str(keys["trust"])}
    ok = _cli("bundle", "install", signed, "--store", store, "--config", tmp_path / "none.toml", "--no-restart", env_extra=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "signed by factory" in ok.stdout and "check windows" in ok.stdout
    active = (store / "vt-triage").resolve()

    unsigned = copy_bundle(tmp_path / "unsigned")
    manifest = unsigned / "bundle.toml"
    manifest.write_text(manifest.read_text().replace('version = "', 'version = "8', 1))
    out = _cli("bundle", "install", unsigned, "--store", store, "--config", tmp_path / "none.toml", "--no-restart", env_extra=env)
    assert out.returncode == 2 and "bundle.sig: bundle is not signed" in out.stderr, out.stdout + out.stderr

    tampered = tmp_path / "tampered.tar"
    sign_bundle(unsigned, keys["factory"])
    model = unsigned / "model.onnx"
    data = bytearray(model.read_bytes())
    data[1000] ^= 0x40
    model.write_bytes(bytes(data))
    assert _cli("bundle", "pack", unsigned, "-o", tampered).returncode == 0
    out = _cli("bundle", "install", tampered, "--store", store, "--config", tmp_path / "none.toml", "--no-restart", env_extra=env)
    assert out.returncode == 2 and "model.onnx: sha256 mismatch" in out.stderr, out.stdout + out.stderr
    assert (store / "vt-triage").resolve() == active, "a refused bundle changed the active slot"
    assert not (store / ".transaction.json").exists()


def test_daemon_check_refuses_an_unsigned_bundle_under_trust(tmp_path, keys, signed):
    unsigned = copy_bundle(tmp_path / "unsigned")
    cfg = tmp_path / "edge-ecg.toml"
    base = ['source = "replay:/nonexistent?speed=1"', "[trust]", f'keys = "{keys["trust"]}"', "require_signature = true"]
    cfg.write_text("\n".join(base + ["[[bundle]]", f'path = "{unsigned}"', 'role = "triage"', "[sinks]", f'state_dir = "{tmp_path}/state"']) + "\n")
    out = _cli("run", "--config", cfg, "--check")
    assert out.returncode != 0 and "bundle.sig" in out.stderr and "not signed" in out.stderr, out.stdout + out.stderr
    cfg.write_text("\n".join(base + ["[[bundle]]", f'path = "{signed}"', 'role = "triage"', "[sinks]", f'state_dir = "{tmp_path}/state"']) + "\n")
    out = _cli("run", "--config", cfg, "--check")
    assert out.returncode == 0, out.stdout + out.stderr
