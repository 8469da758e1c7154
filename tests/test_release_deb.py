"""The release: both .deb packages built from this checkout, the arm64 one listed, the amd64 one
installed with no network into a throwaway systemd machine, where the installed daemon passes
``edge-ecg doctor`` with a simulated cart, raises a VT alarm from a replayed MIT-BIH record, and
rolls back a bundle that fails its health check under the real systemd.

Cost: the first run downloads the wheelhouses (~540 MB for four locks, cached in
``.cache/wheelhouse/`` by lock hash); later runs use the cache. The machine inside is an overlay
of this one (``tests/helpers/systemd_container.py``): nothing it installs survives the test.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from helpers.systemd_container import SystemdContainer, can_boot
from helpers.daemon import write_wfdb

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
RHYTHM_VERSION = re.search(r'^version = "([^"]+)"', (REPO / "bundles" / "rhythm" / "bundle.toml").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (a Debian machine builds the release)")
    from release.build import build

    out = tmp_path_factory.mktemp("dist")
    t0 = time.monotonic()
    built = build(["amd64", "arm64"], out, run_lintian=False, workdir=tmp_path_factory.mktemp("release-work"))
    print(f"built {', '.join(p.name for p in built.values())} in {time.monotonic() - t0:.0f} s")
    return built


def deb_members(deb: Path) -> tuple[dict[str, tarfile.TarInfo], bytes]:
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    import io

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.lstrip("./"): m for m in tar.getmembers()}, data


def deb_file(data: bytes, name: str) -> str:
    import io

    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.extractfile("./" + name).read().decode()


def test_arm64_package_carries_an_aarch64_cp310_wheelhouse(debs):
    deb = debs["arm64"]
    assert deb.name == "edge-ecg_0.1.0_arm64.deb" or deb.name.endswith("_arm64.deb")
    members, data = deb_members(deb)
    listing = sorted(members)
    print("\n".join(f"{members[n].size:>10} {n}" for n in listing if members[n].isfile()))
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Architecture: arm64" in control and "python3 (>= 3.10), python3 (<< 3.11)" in control
    wheels = [n.split("/")[-1] for n in listing if n.startswith("opt/edge-ecg/wheels/") and n.endswith(".whl")]
    binary = [w for w in wheels if not w.endswith("-none-any.whl")]
    assert binary and all("aarch64" in w and ("cp310" in w or "abi3" in w or "-none-manylinux" in w) for w in binary), binary
    reqs = deb_file(data, "opt/edge-ecg/wheels/requirements-cp310.txt")
    pinned = [l for l in reqs.splitlines() if l and not l.startswith("#")]
    assert all("--hash=sha256:" in l for l in pinned)
    assert {l.split("  # ")[1] for l in pinned} == set(wheels), "every wheel is pinned by hash, and only those"
    for dep in ("numpy==1.", "onnxruntime==", "scipy==", "cryptography==", "pyserial==", "tomli==", "edge-ecg=="):
        assert any(l.startswith(dep) for l in pinned), dep
    assert [n for n in listing if n.startswith("opt/edge-ecg/wheels/requirements-")] == ["opt/edge-ecg/wheels/requirements-cp310.txt"]
    for b in ("rhythm", "vt-triage"):
        assert f"opt/edge-ecg/share/bundles/{b}/bundle.sig" in members and f"opt/edge-ecg/share/bundles/{b}/model.int8.onnx" in members
    for path in ("etc/edge-ecg/edge-ecg.toml", "etc/edge-ecg/trusted.d/development.pub", "lib/systemd/system/edge-ecg.service",
                 "lib/udev/rules.d/99-edge-ecg-cart.rules", "usr/bin/edge-ecg", "opt/edge-ecg/build-info.json",
                 "lib/systemd/system/edge-ecg-display.socket", "usr/lib/systemd/user/edge-ecg-kiosk.service",
                 "lib/systemd/system/edge-ecg-bundles.service"):
        assert path in members, path
    assert "require_signature = true" in deb_file(data, "etc/edge-ecg/edge-ecg.toml")
    info = json.loads(deb_file(data, "opt/edge-ecg/build-info.json"))
    assert info["target"] == "arm64" and info["python_tags"] == ["cp310"] and info["signing_key"]["development"] is True
    for n in listing:
        if members[n].isfile() and members[n].size < 1 << 20 and not n.endswith((".whl", ".onnx", ".npz", ".gz")):
            assert "PRIVATE KEY" not in deb_file(data, n), f"{n} holds a private key"


def test_both_packages_pass_lintian(debs):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (make system-deps installs it)")
    from release.deb import lintian

    for deb in debs.values():
        res = lintian(deb)
        assert res.returncode == 0, res.stdout + res.stderr


def vt_excerpt(mitdb_dir: Path, folder: Path) -> Path:
    """MIT-BIH 205, 270-330 s: two annotated VT runs (about 29 s and 33.5 s into the excerpt)."""
    from edge_ecg.records import read_record

    rec = read_record(mitdb_dir / "205")
    return write_wfdb(rec.slice(int(270 * rec.fs), int(330 * rec.fs)), folder, "vt205")


def bad_leads_bundle(share: Path) -> Path:
    """rhythm, signed, its hashes and check windows fine, but drawn for leads V3/V4 this cart does not send:
    only the running daemon can tell, so only the health check catches it."""
    from edge_ecg.bundle import load_bundle
    from edge_ecg.bundle_store import pack_bundle
    from edge_ecg.signing import sign_bundle
    from release.build import DEV_KEY

    src = REPO / "bundles" / "rhythm"
    dest = share / "rhythm-bad"
    dest.mkdir()
    for name in ["bundle.toml", *load_bundle(src, verify=False).files]:
        shutil.copy(src / name, dest / name)
    text = (dest / "bundle.toml").read_text()
    text = text.replace('version = "', 'version = "9.', 1).replace("leads = []", 'leads = ["V3", "V4"]', 1)
    (dest / "bundle.toml").write_text(text)
    sign_bundle(dest, DEV_KEY)
    return pack_bundle(dest, share / "rhythm-bad.tar")


def events(c: SystemdContainer) -> list[dict]:
    out = c.run("cat /var/lib/edge-ecg/events.jsonl", check=False).stdout
    return [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]


def wait_for(pred, timeout: float, what: str, c: SystemdContainer):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(1.0)
    raise AssertionError(f"{what} within {timeout:g} s\n{c.run('systemctl status edge-ecg --no-pager; journalctl -u edge-ecg --no-pager | tail -40', check=False).stdout}")


def test_amd64_package_installs_offline_and_the_installed_daemon_works(debs, tmp_path, mitdb_dir):
    ok, why = can_boot()
    if not ok:
        pytest.skip(f"cannot boot a throwaway systemd machine here: {why}")
    share = tmp_path / "share"
    share.mkdir()
    deb = share / debs["amd64"].name
    shutil.copy(debs["amd64"], deb)
    record = vt_excerpt(mitdb_dir, share)
    bad = bad_leads_bundle(share)
    # the checkout is bound in too: the simulated cart runs from it, and a checkout under /tmp would
    # otherwise be hidden by the machine's own /tmp
    with SystemdContainer(tmp_path / "machine", bind=[share, REPO]) as c:
        links = [l.split(":")[1].strip() for l in c.run("ip -o link show").stdout.splitlines()]
        assert links == ["lo"], f"the machine has a network: {links}"
        probe = c.run("python3 -c \"import socket; socket.create_connection(('pypi.org', 443), 3)\"", check=False)
        assert probe.returncode != 0, "the package index is reachable from inside"
        # this machine is a container image whose policy-rc.d forbids starting services (a docker
        # build habit); a unit has none, and the package's postinst must start the service itself
        c.run("rm -f /usr/sbin/policy-rc.d")
        # a bench with a simulated cart: the cart is a pty, which the unit's DevicePolicy must allow
        c.run("mkdir -p /etc/systemd/system/edge-ecg.service.d && printf '[Service]\\nDeviceAllow=char-pts rw\\n' "
              "> /etc/systemd/system/edge-ecg.service.d/cart-sim.conf")
        cart = c.popen(f"exec {sys.executable} -m edge_ecg cart-sim {record} --speed 2 --loop --link /dev/edge-ecg-cart",
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # this machine has no display and no speaker: the bench's config says so, seeded before the
            # install as an image build would (dpkg keeps it: --force-confold); a unit that keeps them
            # enabled without the devices fails `doctor`
            shipped = deb_file(deb_members(deb)[1], "etc/edge-ecg/edge-ecg.toml")
            seeded = shipped.replace("\n[display]", "\n[display]\nenabled = false", 1).replace("\n[audio]", "\n[audio]\nenabled = false", 1)
            assert seeded.count("enabled = false") == 2
            (share / "edge-ecg.toml").write_text(seeded)
            c.run(f"mkdir -p /etc/edge-ecg && cp {share}/edge-ecg.toml /etc/edge-ecg/edge-ecg.toml")
            # what the package's udev rule does for a real cart: the port belongs to group dialout, mode 0660
            wait_for(lambda: c.run("test -e /dev/edge-ecg-cart", check=False).returncode == 0, 60, "cart-sim's pty", c)
            c.run("chgrp dialout \"$(readlink -f /dev/edge-ecg-cart)\" && chmod 0660 \"$(readlink -f /dev/edge-ecg-cart)\"")
            t0 = time.monotonic()
            inst = c.run(f"dpkg -i --force-confold {deb}", timeout=900)
            print(f"dpkg -i: {time.monotonic() - t0:.0f} s\n{inst.stdout[-2000:]}\n{inst.stderr[-2000:]}")
            assert "edge-ecg: installed" in inst.stdout
            assert c.run("getent group dialout").stdout.split(":")[-1].strip().split(",").count("edge-ecg") == 1
            assert c.run("systemctl is-enabled edge-ecg").stdout.strip() == "enabled"
            assert c.run("systemctl is-active edge-ecg-display.socket").stdout.strip() == "active"
            assert c.run("stat -c %a /etc/edge-ecg/display.token").stdout.strip() == "600"
            store = c.run("ls -l /var/opt/edge-ecg/bundles").stdout
            assert "rhythm -> versions/rhythm/" in store and "vt-triage -> versions/vt-triage/" in store, store

            vt = wait_for(lambda: [e for e in events(c) if e.get("kind") == "raised" and e.get("alarm") == "ventricular_tachycardia"],
                          120, "a VT alarm from the installed daemon", c)
            print(f"VT alarm at stream t={vt[0]['t']} s (annotated onsets near 29 s and 33.5 s), priority {vt[0]['priority']}")
            assert vt[0]["priority"] == "high"
            started = [e for e in events(c) if e.get("kind") == "started"]
            assert started and started[0]["build"].startswith("0.1.0+"), started

            doc = c.run("edge-ecg doctor --json", check=False)
            report = json.loads(doc.stdout)
            print("\n".join(f"{f['status']:4} {f['check']}: {f['detail']}" for f in report["findings"]))
            assert doc.returncode == 0 and report["ok"], doc.stdout
            by = {f["check"]: f for f in report["findings"]}
            assert by["systemd unit"]["status"] == "pass" and by["cart port"]["status"] == "pass"
            assert "signed by development" in by["bundle rhythm"]["detail"]
            assert "pinned by the release's hash lock" in by["packages"]["detail"]
            version = c.run("edge-ecg --version").stdout
            assert "(release amd64)" in version and f"bundle rhythm {RHYTHM_VERSION}" in version, version

            # a signed bundle that the running daemon cannot use: rolled back by the health check
            t1 = time.monotonic()
            upd = c.run(f"edge-ecg bundle install {bad} --health-timeout 90", check=False, timeout=400)
            print(f"bundle install (bad leads): {time.monotonic() - t1:.0f} s\n{upd.stdout}")
            assert upd.returncode == 1, upd.stdout + upd.stderr
            assert "NOT healthy" in upd.stdout and "previous bundle healthy after the rollback" in upd.stdout, upd.stdout
            listing = c.run("edge-ecg bundle list").stdout
            rhythm = listing.split("\nrhythm\n", 1)[1].splitlines()
            assert rhythm[0].split()[:2] == ["active", RHYTHM_VERSION], listing
            assert "rolled back" in listing
            assert c.run("systemctl is-active edge-ecg").stdout.strip() == "active"
        finally:
            cart.kill()
            cart.wait()
