"""``edge-ecg bundle keygen|sign|pack|verify`` (factory) and ``install|rollback|list|recover`` (unit).

Thin over ``edge_ecg.signing``, ``edge_ecg.bundle_store`` and ``edge_ecg.bundle_update``. Unit
commands read the daemon config (``--config``, default the installed one) for the trust folder,
the control socket and which bundle names the daemon runs in which role.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(cli) -> None:
    """Add this area's subcommands to ``cli`` (an ``edge_ecg.cli.CommandLine``)."""
    from edge_ecg.paths import install_paths

    paths = install_paths()
    p = cli.subcommand("bundle", "keygen", "factory: a new Ed25519 signing key (NAME.key, mode 0600) and its public half NAME.pub")
    p.add_argument("key", type=Path, help="where to write the private key, e.g. keys/factory-2025.key (never on a unit)")
    p.set_defaults(func=_keygen)

    p = cli.subcommand("bundle", "sign", "factory: verify a bundle's hashes and sign its bundle.toml (writes bundle.sig)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM), e.g. from `bundle keygen`")
    p.add_argument("--signer", default=None, help="name recorded in the signature (default: the key file's name)")
    p.add_argument("--pack", type=Path, default=None, help="also write the signed bundle as one file to ship (tar)")
    p.set_defaults(func=_sign)

    p = cli.subcommand("bundle", "pack", "write a bundle folder as one file to ship (tar of its listed files and signature)")
    p.add_argument("bundle", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(func=_pack)

    p = cli.subcommand("bundle", "verify", "check a bundle's signature against trusted keys and every file hash; installs nothing")
    p.add_argument("bundle", type=Path, help="bundle folder or packed file")
    p.add_argument("--trust", type=Path, default=paths.trust_dir, help=f"folder of trusted public keys (default {paths.trust_dir})")
    p.set_defaults(func=_verify)

    def unit_args(p, health: bool = True) -> None:
        p.add_argument("--config", type=Path, default=paths.config, help=f"daemon config (default {paths.config}, or $EDGE_ECG_CONFIG)")
        p.add_argument("--store", type=Path, default=paths.bundle_store, help=f"bundle store (default {paths.bundle_store}, or $EDGE_ECG_BUNDLE_STORE)")
        if health:
            p.add_argument("--restart-cmd", default=None, help="how to restart the daemon (default: systemctl restart --no-block "
                           f"{paths.unit}; needed where systemd does not run the daemon)")
            p.add_argument("--no-restart", action="store_true", help="switch the slot without restarting the daemon (first install, image builds)")
            p.add_argument("--health-timeout", type=float, default=120.0, help="seconds the restarted daemon has to be healthy (default 120)")

    p = cli.subcommand("bundle", "install", "stage, verify (signature, hashes, check windows, engine), switch, restart; roll back if unhealthy")
    p.add_argument("bundle", type=Path, help="a signed bundle: folder or packed file")
    unit_args(p)
    p.add_argument("--if-newer", action="store_true", help="skip when the active version is the same or newer (package upgrades)")
    p.set_defaults(func=_install)

    p = cli.subcommand("bundle", "rollback", "make the previous version of a bundle active again (restart, health check)")
    p.add_argument("name", nargs="?", default=None, help="bundle name (default: the only one with a previous version)")
    unit_args(p)
    p.set_defaults(func=_rollback)

    p = cli.subcommand("bundle", "list", "the store: each bundle's active and previous version, stored versions, signer, recent changes")
    unit_args(p, health=False)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = cli.subcommand("bundle", "recover", "undo a bundle switch that was never confirmed healthy (the unit runs this before the daemon starts)")
    unit_args(p)
    p.add_argument("--quiet", action="store_true", help="print only when something was undone")
    p.set_defaults(func=_recover)


def _say(line: str) -> None:
    print(line, flush=True)


def _keygen(args) -> int:
    from edge_ecg.signing import generate_keypair

    priv, pub, kid = generate_keypair(args.key)
    _say(f"private key {priv} (keep it on the factory's signing machine; never on a unit)")
    _say(f"public key  {pub} (key id {kid}): copy it to /etc/edge-ecg/trusted.d/ on the units, or ship it with `make release`")
    return 0


def _sign(args) -> int:
    from edge_ecg.bundle_store import pack_bundle
    from edge_ecg.paths import install_paths
    from edge_ecg.signing import sign_bundle

    sig = sign_bundle(args.bundle, args.key, args.signer, trust_dir=install_paths().trust_dir)
    _say(f"signed {args.bundle} with key {sig.key_id} ({sig.signer}): {sig.path}")
    if args.pack:
        _say(f"packed {pack_bundle(args.bundle, args.pack)}")
    return 0


def _pack(args) -> int:
    from edge_ecg.bundle_store import pack_bundle

    _say(f"packed {pack_bundle(args.bundle, args.output)}")
    return 0


def _verify(args) -> int:
    import shutil
    import tempfile

    from edge_ecg.bundle import load_bundle
    from edge_ecg.bundle_store import BundleStore
    from edge_ecg.signing import TrustPolicy

    path = args.bundle
    tmp = None
    if path.is_file():
        tmp = Path(tempfile.mkdtemp(prefix="edge-ecg-verify-"))
        path = BundleStore(tmp).stage(args.bundle)
    try:
        b = load_bundle(path, trust=TrustPolicy(args.trust, required=True))
        _say(f"{b.name} {b.version}: {b.signature.describe()}; {len(b.files)} files match their sha256")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _unit_context(args):
    """(store, trust policy that requires signatures, roles by bundle name, control socket) from the config."""
    from edge_ecg.bundle_store import BundleStore
    from edge_ecg.paths import install_paths
    from edge_ecg.service.config import load_config
    from edge_ecg.signing import TrustPolicy

    store = BundleStore(args.store)
    roles: dict[str, tuple[str, str, str]] = {}
    socket = None
    keys = install_paths().trust_dir
    if args.config.is_file():
        cfg = load_config(args.config)
        keys = cfg.trust.keys_dir
        socket = cfg.sinks.socket_path
        for b in cfg.bundles:
            if b.path.parent.resolve() == store.root.resolve():
                roles[b.path.name] = (b.role, b.precision, b.backend)
    return store, TrustPolicy(keys, required=True), roles, socket


def _service(args, socket):
    from edge_ecg.bundle_update import ServiceControl
    from edge_ecg.errors import ConfigError
    from edge_ecg.paths import install_paths

    if args.no_restart:
        return None
    if socket is None:
        raise ConfigError(args.config, "no daemon config here: pass --config, or --no-restart to only switch the slot")
    return ServiceControl.for_unit(socket, install_paths().unit, args.restart_cmd)


def _report(result) -> int:
    _say(f"{result.name} {result.version}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
    return 0 if result.ok else 1


def _install(args) -> int:
    from edge_ecg.bundle_update import install_bundle

    store, trust, roles, socket = _unit_context(args)
    result = install_bundle(args.bundle, store, trust, service=_service(args, socket), roles=roles, health_timeout_s=args.health_timeout,
                            if_newer=args.if_newer, progress=_say)
    return _report(result)


def _rollback(args) -> int:
    from edge_ecg.bundle_update import rollback_bundle

    store, trust, roles, socket = _unit_context(args)
    result = rollback_bundle(args.name, store, service=_service(args, socket), roles=roles, health_timeout_s=args.health_timeout,
                             trust=trust, progress=_say)
    return _report(result)


def _recover(args) -> int:
    from edge_ecg.bundle_update import recover_store

    store, _, roles, socket = _unit_context(args)
    tx = recover_store(store)
    if tx is None:
        if not args.quiet:
            _say("nothing to recover")
        return 0
    _say(f"undid the unconfirmed {tx.op} of {tx.name}: active again {tx.from_active or 'none'} (was switched to {tx.to})")
    service = _service(args, socket)
    if service is not None and tx.name in roles:
        service.restart()
        _say("restarted the daemon")
    return 0


def _list(args) -> int:
    store, trust, _, _ = _unit_context(args)
    states = [store.state(n, trust) for n in store.names()]

    def v(x):
        return None if x is None else {"version": x.version, "path": str(x.path), "manifest_sha256": x.manifest_sha256, "signer": x.signer}

    if args.json:
        print(json.dumps({"store": str(store.root), "bundles": [
            {"name": s.name, "active": v(s.active), "previous": v(s.previous), "versions": [v(x) for x in s.versions],
             "trial": None if s.trial is None else s.trial.__dict__} for s in states], "history": store.history()}, indent=2))
        return 0
    _say(f"store {store.root}")
    if not states:
        _say("  no bundles installed")
    for s in states:
        _say(f"{s.name}")
        _say(f"  active    {s.active.label + ', ' + (s.active.signer or '') if s.active else 'none'}")
        _say(f"  previous  {s.previous.label + ', ' + (s.previous.signer or '') if s.previous else 'none'}")
        _say(f"  stored    {', '.join(x.label for x in s.versions) or 'none'}")
        if s.trial is not None:
            _say(f"  UNCONFIRMED {s.trial.op} to {s.trial.to} since {s.trial.started} (pid {s.trial.pid}): `edge-ecg bundle recover` undoes it")
    hist = store.history(10)
    if hist:
        _say("recent changes")
        for h in hist:
            extra = h.get("reason") or h.get("health") or h.get("note") or h.get("detail") or ""
            _say(f"  {h['time']} {h['event']} {h.get('name', '')} -> {h.get('to', '')} {h.get('result', '')}" + (f": {extra}" if extra else ""))
    sys.stdout.flush()
    return 0
