"""``make release``: ``edge-ecg_<version>_arm64.deb`` and ``_amd64.deb`` in ``dist/``.

    python -m release.build [--target arm64] [--out dist] [--signing-key factory.key] [--trusted-key next.pub] [--no-lintian]

Bundles are signed here with ``--signing-key`` (``$SIGNING_KEY`` in ``make release``): the
factory's Ed25519 key, whose public half the package ships in ``/etc/edge-ecg/trusted.d``.
Without one, a development key is made once in ``.cache/release/`` and the package trusts only
it; ``edge-ecg doctor`` warns on a unit that trusts a development key. No private key ever enters
a package (``release.deb`` refuses to build one that holds a PEM private key).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from edge_ecg import __version__
from release.deb import BuildMeta, assemble, build_deb, lintian
from release.targets import REPO, TARGETS
from release.wheelhouse import CACHE, ensure

DEV_KEY = CACHE / "release" / "development.key"


def _git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def build_meta(signer: str, key_id: str, development: bool) -> BuildMeta:
    commit = _git("rev-parse", "--short=8", "HEAD") or "unknown"
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    build_id = f"{__version__}+{now:%Y%m%d%H%M}.g{commit}" + (".dirty" if dirty else "")
    return BuildMeta(__version__, build_id, commit + ("-dirty" if dirty else ""), now, signer, key_id, development)


def package_wheel(workdir: Path) -> Path:
    out = workdir / "wheel"
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
                          "-w", str(out), str(REPO)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"release: building the edge-ecg wheel failed:\n{res.stderr[-3000:]}")
    (wheel,) = out.glob("edge_ecg-*.whl")
    return wheel


def signing_key(path: Path | None, log=print) -> tuple[Path, str, bool]:
    """(private key, trusted name, is development key)."""
    from edge_ecg.signing import generate_keypair

    if path is not None:
        return path, path.stem, False
    if not DEV_KEY.is_file():
        generate_keypair(DEV_KEY)
        log(f"release: no --signing-key: made a development key {DEV_KEY} (units will warn; use the factory key for a real release)")
    return DEV_KEY, "development", True


def sign_bundles(src: Path, key: Path, workdir: Path) -> list[Path]:
    """Copy every bundle of ``src`` that verifies and sign the copies (the repo's bundles stay unsigned)."""
    from edge_ecg.bundle import load_bundle
    from edge_ecg.signing import sign_bundle

    out = []
    for b in sorted(p for p in src.iterdir() if (p / "bundle.toml").is_file()):
        bundle = load_bundle(b)
        dest = workdir / "bundles" / bundle.name
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for name in ["bundle.toml", *bundle.files]:
            shutil.copy2(b / name, dest / name)
        sign_bundle(dest, key)
        out.append(dest)
    return out


def public_key_file(private: Path, name: str, workdir: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    from edge_ecg.signing import load_private_key

    pub = load_private_key(private).public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path = workdir / "keys" / f"{name}.pub"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pub)
    return path


def build(targets: list[str], out: Path, key: Path | None = None, extra_keys: list[Path] | None = None, bundles: Path = REPO / "bundles",
          run_lintian: bool = True, workdir: Path | None = None, log=print) -> dict[str, Path]:
    from edge_ecg.signing import key_id_of, load_private_key

    workdir = workdir or Path(tempfile.mkdtemp(prefix="edge-ecg-release-"))
    private, signer, development = signing_key(key, log)
    meta = build_meta(signer, key_id_of(load_private_key(private).public_key()), development)
    log(f"release {meta.build_id}: bundles signed by {signer} ({meta.key_id})")
    wheel = package_wheel(workdir)
    signed = sign_bundles(bundles, private, workdir)
    trusted = [public_key_file(private, signer, workdir), *(extra_keys or [])]
    debs = {}
    for name in targets:
        target = TARGETS[name]
        houses = {py: ensure(target, py, log) for py in target.pythons}
        stage = assemble(target, workdir / f"stage-{name}", wheel, houses, signed, trusted, meta)
        deb = build_deb(stage, out / f"edge-ecg_{meta.version}_{name}.deb")
        shutil.rmtree(stage, ignore_errors=True)
        log(f"{deb} ({deb.stat().st_size / 2**20:.0f} MiB)")
        if run_lintian:
            if shutil.which("lintian") is None:
                raise SystemExit("release: lintian is not installed (apt-get install lintian), or pass --no-lintian")
            res = lintian(deb)
            if res.returncode != 0:
                raise SystemExit(f"release: lintian found problems in {deb.name}:\n{res.stdout}{res.stderr}")
            log(f"{deb.name}: lintian clean" + (f" ({res.stdout.strip()})" if res.stdout.strip() else ""))
        debs[name] = deb
    return debs


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", action="append", choices=sorted(TARGETS), help="default: all")
    ap.add_argument("--out", type=Path, default=REPO / "dist")
    ap.add_argument("--signing-key", type=Path, default=Path(os.environ["SIGNING_KEY"]) if os.environ.get("SIGNING_KEY") else None)
    ap.add_argument("--trusted-key", type=Path, action="append", default=[], help="another public key units should trust (key rotation)")
    ap.add_argument("--bundles", type=Path, default=REPO / "bundles")
    ap.add_argument("--no-lintian", action="store_true")
    args = ap.parse_args(argv)
    build(args.target or sorted(TARGETS), args.out, args.signing_key, args.trusted_key, args.bundles, not args.no_lintian)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
