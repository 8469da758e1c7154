"""Ed25519 bundle signatures: the factory signs, a unit verifies against the keys it trusts.

What is signed is ``bundle.toml``: it holds the sha256 of every other file of the bundle, so one
signature over the manifest covers the models and the check windows, and ``load_bundle`` checks
those hashes anyway. The signature sits beside it in ``bundle.sig`` (TOML)::

    format = "edge-ecg-signature/1"
    algorithm = "ed25519"
    key_id = "3f2a..."            # sha256 of the raw public key, first 16 hex digits
    signer = "factory-2025"       # the name the factory gave its key (informative)
    manifest_sha256 = "..."       # the bundle.toml that was signed
    signed_at = "2025-..."
    signature = "base64..."       # Ed25519 over DOMAIN + the bytes of bundle.toml

A unit trusts the public keys in ``/etc/edge-ecg/trusted.d/*.pub`` (PEM, as ``openssl pkey
-pubout`` writes them); the signer it reports is the trusted key's file name, not the name the
signature claims. Private keys belong to the factory (an offline machine or an HSM) and never to
a unit: the release build ships public keys only, ``edge-ecg doctor`` fails a unit with a private
key in its trust folder, and ``bundle sign`` refuses a key kept there.

``cryptography`` (pyca) does the mathematics; it has abi3 wheels for aarch64/Python 3.10.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from edge_ecg.errors import BundleError, SignatureError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

__all__ = [
    "SIGNATURE_FILE", "SIGNATURE_FORMAT", "TrustPolicy", "TrustedKey", "Signature", "SignatureCheck",
    "generate_keypair", "load_private_key", "load_trusted_keys", "key_id_of", "sign_bundle",
    "read_signature", "check_signature", "private_keys_in",
]

SIGNATURE_FILE = "bundle.sig"
SIGNATURE_FORMAT = "edge-ecg-signature/1"
DOMAIN = b"edge-ecg bundle signature v1\0"  # a signature over a manifest can never be replayed as another kind of message
MANIFEST = "bundle.toml"


@dataclass(frozen=True)
class TrustPolicy:
    """Which keys a unit trusts and whether an unsigned bundle may load.

    ``required = False`` (development, ``make demo``): an unsigned bundle loads, a signature by an
    unknown key loads with a warning, a signature that does not verify is always refused.
    """

    keys_dir: Path
    required: bool = True


@dataclass(frozen=True)
class TrustedKey:
    name: str  # the file's stem: what `bundle list` and `doctor` show as the signer
    key_id: str
    path: Path
    public_key: object  # cryptography Ed25519PublicKey


@dataclass(frozen=True)
class Signature:
    key_id: str
    signer: str
    manifest_sha256: str
    signed_at: str
    value: bytes
    path: Path


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome for a bundle that loaded: ``verified`` (by ``signer``), ``unsigned`` or ``untrusted``."""

    status: str
    signer: str | None = None
    key_id: str | None = None

    def describe(self) -> str:
        if self.status == "verified":
            return f"signed by {self.signer} ({self.key_id})"
        if self.status == "untrusted":
            return f"signed by an untrusted key {self.key_id} (claims {self.signer!r})"
        return "unsigned"


def _crypto():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return serialization, ed25519


def key_id_of(public_key) -> str:
    serialization, _ = _crypto()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def generate_keypair(private_path: str | os.PathLike[str]) -> tuple[Path, Path, str]:
    """A new Ed25519 key: ``NAME.key`` (PKCS#8 PEM, mode 0600) and ``NAME.pub`` beside it.

    Refuses to overwrite either file: replacing a factory key by accident orphans every unit that trusts it.
    """
    serialization, ed25519 = _crypto()
    private_path = Path(private_path)
    public_path = private_path.with_suffix(".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise BundleError(p, "exists; refusing to overwrite a signing key")
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    private_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(private_path, pem)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path, key_id_of(key.public_key())


def load_private_key(path: str | os.PathLike[str]):
    serialization, ed25519 = _crypto()
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BundleError(path, f"cannot read the signing key ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise BundleError(path, f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise BundleError(path, f"is a {type(key).__name__}, not an Ed25519 key")
    return key


def _is_private(data: bytes) -> bool:
    return b"PRIVATE KEY" in data


def private_keys_in(folder: Path) -> list[Path]:
    """Files in ``folder`` that hold a private key (a unit must have none)."""
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir()):
        try:
            if p.is_file() and _is_private(p.read_bytes()[:1 << 16]):
                out.append(p)
        except OSError:
            continue
    return out


def load_trusted_keys(folder: str | os.PathLike[str]) -> dict[str, TrustedKey]:
    """Every ``*.pub`` in ``folder`` by key id; a file that is not an Ed25519 public key is an error naming it."""
    serialization, ed25519 = _crypto()
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    keys: dict[str, TrustedKey] = {}
    for path in sorted(folder.glob("*.pub")):
        data = path.read_bytes()
        if _is_private(data):
            raise SignatureError(path, "is a private key; only public keys belong in the trust folder (private keys never go on a unit)")
        try:
            pub = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise SignatureError(path, f"not a PEM public key ({exc})") from None
        if not isinstance(pub, ed25519.Ed25519PublicKey):
            raise SignatureError(path, f"is a {type(pub).__name__}, not an Ed25519 public key")
        kid = key_id_of(pub)
        keys[kid] = TrustedKey(path.stem, kid, path, pub)
    return keys


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_bundle(root: str | os.PathLike[str], private_key: str | os.PathLike[str], signer: str | None = None,
                trust_dir: Path | None = None) -> Signature:
    """Verify the bundle (every hash), then write ``bundle.sig`` over its ``bundle.toml``.

    ``trust_dir`` (a unit's trust folder, if this machine has one) guards the rule that a private
    key is never kept on a unit: a key stored inside it is refused.
    """
    from edge_ecg.bundle import dump_toml, load_bundle

    key_path = Path(private_key)
    if trust_dir is not None and trust_dir.is_dir() and key_path.resolve().parent == trust_dir.resolve():
        raise BundleError(key_path, f"is kept in the unit's trust folder {trust_dir}; private keys never go on a unit")
    bundle = load_bundle(root)  # a bundle that does not verify is never signed
    key = load_private_key(key_path)
    manifest = (bundle.root / MANIFEST).read_bytes()
    value = key.sign(DOMAIN + manifest)
    sig = Signature(
        key_id=key_id_of(key.public_key()),
        signer=signer or key_path.stem,
        manifest_sha256=_sha256(manifest),
        signed_at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        value=value,
        path=bundle.root / SIGNATURE_FILE,
    )
    text = dump_toml({
        "format": SIGNATURE_FORMAT, "algorithm": "ed25519", "key_id": sig.key_id, "signer": sig.signer,
        "manifest": MANIFEST, "manifest_sha256": sig.manifest_sha256, "signed_at": sig.signed_at,
        "signature": base64.b64encode(value).decode("ascii"),
    })
    tmp = sig.path.with_suffix(".sig.tmp")
    tmp.write_text(text)
    os.replace(tmp, sig.path)
    return sig


def read_signature(path: Path) -> Signature:
    """Parse ``bundle.sig``; a malformed file is a ``SignatureError`` naming the field."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SignatureError(path, f"unreadable signature ({exc})") from None
    if data.get("format") != SIGNATURE_FORMAT:
        raise SignatureError(path, f"format {data.get('format')!r} is not {SIGNATURE_FORMAT!r}")
    if data.get("algorithm") != "ed25519":
        raise SignatureError(path, f"algorithm {data.get('algorithm')!r} is not 'ed25519'")
    for key in ("key_id", "manifest_sha256", "signature"):
        if not isinstance(data.get(key), str):
            raise SignatureError(path, f"missing {key!r}")
    if not re.fullmatch(r"[0-9a-f]{16}", data["key_id"]) or not re.fullmatch(r"[0-9a-f]{64}", data["manifest_sha256"]):
        raise SignatureError(path, "key_id / manifest_sha256 are not hex digests")
    try:
        value = base64.b64decode(data["signature"], validate=True)
    except ValueError:
        raise SignatureError(path, "signature is not base64") from None
    if len(value) != 64:
        raise SignatureError(path, f"an Ed25519 signature is 64 bytes, this one {len(value)}")
    return Signature(data["key_id"], str(data.get("signer", "")), data["manifest_sha256"], str(data.get("signed_at", "")), value, path)


def check_signature(root: str | os.PathLike[str], policy: TrustPolicy, manifest: bytes | None = None) -> SignatureCheck:
    """Verify ``root``'s signature under ``policy``; raises ``SignatureError`` naming the file and why.

    Refused always: a malformed signature, a signature over another manifest, one that does not
    verify. Refused when ``policy.required``: no signature, or a key not in ``policy.keys_dir``.
    ``manifest``: the bytes of ``bundle.toml`` the caller will parse (read here when not given).
    """
    from cryptography.exceptions import InvalidSignature

    root = Path(root)
    sig_path = root / SIGNATURE_FILE
    manifest = (root / MANIFEST).read_bytes() if manifest is None else manifest
    if not sig_path.is_file():
        if policy.required:
            raise SignatureError(sig_path, f"bundle is not signed; this unit loads only bundles signed by a key in {policy.keys_dir}")
        return SignatureCheck("unsigned")
    sig = read_signature(sig_path)
    if sig.manifest_sha256 != _sha256(manifest):
        raise SignatureError(sig_path, "the signature is for another bundle.toml: the manifest was changed after signing")
    keys = load_trusted_keys(policy.keys_dir)
    key = keys.get(sig.key_id)
    if key is None:
        if policy.required:
            known = ", ".join(f"{k.name} ({k.key_id})" for k in keys.values()) or f"none: {policy.keys_dir} holds no *.pub"
            raise SignatureError(sig_path, f"signed by key {sig.key_id} (claims {sig.signer!r}), which this unit does not trust (trusted: {known})")
        return SignatureCheck("untrusted", sig.signer, sig.key_id)
    try:
        key.public_key.verify(sig.value, DOMAIN + manifest)
    except InvalidSignature:
        raise SignatureError(sig_path, f"signature does not verify with trusted key {key.name} ({key.key_id}): forged, or made over other bytes") from None
    return SignatureCheck("verified", key.name, key.key_id)
