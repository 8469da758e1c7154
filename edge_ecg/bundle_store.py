"""The bundle store of a unit: immutable versions, an active and a previous slot per bundle name.

Layout (``/var/opt/edge-ecg/bundles`` on a unit, ``edge_ecg.paths``)::

    rhythm            -> versions/rhythm/0.2.0-1a2b3c4d     the active slot: the daemon's config names this link
    rhythm.previous   -> versions/rhythm/0.1.0-9f8e7d6c     what `bundle rollback` returns to
    versions/<name>/<version>-<sha8 of bundle.toml>/        one folder per installed version, never edited
    .staging/                                             copies in progress (a killed install leaves them; cleaned next time)
    .transaction.json                                     a switch not yet confirmed healthy
    .lock                                                 flock: one writer at a time
    history.jsonl                                         every install, rollback and recovery, with the reason

Why this shape: a new version is copied and verified *beside* the running one, so nothing the
daemon reads changes until one ``rename(2)`` of a symlink swaps the slot (atomic on POSIX); a
kill at any earlier moment leaves the previous bundle active and at worst a stale staging copy.
A swap is recorded in ``.transaction.json`` before it happens and the record removed only when
the daemon reported healthy, so a power cut or ``kill -9`` in between is undone by ``recover()``
(run by ``edge-ecg-bundles.service`` before every daemon start, and by every ``bundle`` command).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tarfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edge_ecg.errors import BundleError, EdgeEcgError

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (JetPack 6)
    import tomli as tomllib

__all__ = ["BundleStore", "StoreBusy", "StoredVersion", "SlotState", "Transaction", "pack_bundle"]

MANIFEST = "bundle.toml"
SIGNATURE = "bundle.sig"


class StoreBusy(EdgeEcgError):
    """Another ``bundle install|rollback`` holds the store."""


@dataclass(frozen=True)
class StoredVersion:
    name: str
    version: str
    path: Path
    manifest_sha256: str
    signer: str | None = None  # filled when a trust policy was given

    @property
    def label(self) -> str:
        return f"{self.version} ({self.path.name})"


@dataclass(frozen=True)
class Transaction:
    """A slot switch not yet confirmed: enough to put both links back exactly as they were."""

    op: str  # install | rollback
    name: str
    to: str  # link target (relative to the store root)
    from_active: str | None
    from_previous: str | None
    started: str
    pid: int

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


@dataclass
class SlotState:
    name: str
    active: StoredVersion | None
    previous: StoredVersion | None
    versions: list[StoredVersion] = field(default_factory=list)
    trial: Transaction | None = None  # switched to, not yet confirmed healthy


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
        fo.flush()
        os.fsync(fo.fileno())


def _manifest_files(manifest_path: Path) -> list[str]:
    """The plain file names a bundle consists of: the manifest, its signature, every ``[files]`` entry."""
    try:
        m = tomllib.loads(manifest_path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BundleError(manifest_path, f"unreadable bundle.toml ({exc})") from None
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(manifest_path, "no [files] table")
    for name in files:
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".") or name in (MANIFEST, SIGNATURE):
            raise BundleError(manifest_path, f"[files] {name!r} is not a plain file name")
    return [MANIFEST, SIGNATURE, *files]


def pack_bundle(root: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """One file to ship: an uncompressed tar of ``NAME-VERSION/`` with the manifest, signature and listed files.

    ONNX weights do not compress; plain tar keeps install fast on a Jetson. Engines are never packed
    (they are built for one GPU on the unit itself).
    """
    root, out = Path(root), Path(out)
    m = tomllib.loads((root / MANIFEST).read_text())
    top = f"{m.get('name', root.name)}-{m.get('version', '0')}"
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in _manifest_files(root / MANIFEST):
            if (root / name).is_file():
                info = tar.gettarinfo(str(root / name), arcname=f"{top}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o644
                with open(root / name, "rb") as f:
                    tar.addfile(info, f)
    os.replace(tmp, out)
    return out


class BundleStore:
    """One store folder; every method that writes must run under ``lock()``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.staging = self.root / ".staging"
        self.journal = self.root / ".transaction.json"
        self.history_file = self.root / "history.jsonl"

    # -- locking -----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, blocking: bool = False) -> Iterator["BundleStore"]:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise StoreBusy(f"{self.root}: another bundle install or rollback is running") from None
                raise
            yield self
        finally:
            os.close(fd)

    # -- links -------------------------------------------------------------------------
    def active_link(self, name: str) -> Path:
        return self.root / name

    def previous_link(self, name: str) -> Path:
        return self.root / f"{name}.previous"

    def _target(self, link: Path) -> str | None:
        try:
            return os.readlink(link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.EINVAL:  # a real folder where a slot link belongs (hand-copied bundle)
                raise BundleError(link, "is not a slot link; move it away and install the bundle with `edge-ecg bundle install`") from None
            raise

    def _set_link(self, link: Path, target: str | None) -> None:
        """Point ``link`` at ``target`` (relative to the store) in one rename; ``None`` removes it."""
        if target is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)
        else:
            tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        _fsync_dir(self.root)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        names = {p.name for p in self.root.iterdir() if p.is_symlink() and not p.name.endswith(".previous") and not p.name.startswith(".")}
        versions = self.root / "versions"
        if versions.is_dir():
            names |= {p.name for p in versions.iterdir() if p.is_dir()}
        return sorted(names)

    # -- versions ----------------------------------------------------------------------
    def describe(self, path: Path, trust: Any = None) -> StoredVersion:
        manifest = (path / MANIFEST).read_bytes()
        m = tomllib.loads(manifest.decode("utf-8"))
        signer = None
        if trust is not None:
            from edge_ecg.signing import check_signature

            try:
                signer = check_signature(path, trust, manifest=manifest).describe()
            except BundleError as exc:
                signer = f"REFUSED: {exc.problem}"
        return StoredVersion(str(m.get("name", "?")), str(m.get("version", "?")), path, hashlib.sha256(manifest).hexdigest(), signer)

    def _version_of(self, link: Path, trust: Any) -> StoredVersion | None:
        target = self._target(link)
        if target is None:
            return None
        path = (self.root / target)
        if not (path / MANIFEST).is_file():
            return StoredVersion(link.name, "missing", path, "")
        return self.describe(path, trust)

    def state(self, name: str, trust: Any = None) -> SlotState:
        folder = self.root / "versions" / name
        versions = [self.describe(p, trust) for p in sorted(folder.iterdir()) if (p / MANIFEST).is_file()] if folder.is_dir() else []
        tx = self.pending()
        return SlotState(name, self._version_of(self.active_link(name), trust), self._version_of(self.previous_link(name), trust),
                         versions, tx if tx is not None and tx.name == name else None)

    # -- staging -----------------------------------------------------------------------
    def clean_staging(self) -> None:
        if self.staging.is_dir():
            shutil.rmtree(self.staging, ignore_errors=True)

    def stage(self, source: str | os.PathLike[str]) -> Path:
        """Copy a bundle (folder or ``bundle pack`` tar) into ``.staging``; only its own files, fsynced."""
        source = Path(source)
        self.staging.mkdir(parents=True, exist_ok=True)
        dest = self.staging / uuid.uuid4().hex
        dest.mkdir()
        if source.is_dir():
            for name in _manifest_files(source / MANIFEST):
                if (source / name).is_file():
                    _copy_file(source / name, dest / name)
        elif source.is_file() and tarfile.is_tarfile(source):
            self._extract(source, dest)
        else:
            raise BundleError(source, "is neither a bundle folder nor a bundle archive (edge-ecg bundle pack)")
        _fsync_dir(dest)
        return dest

    def _extract(self, archive: Path, dest: Path) -> None:
        """Plain files under one top folder only: no links, devices, absolute or parent paths."""
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            tops = {m.name.split("/", 1)[0] for m in members}
            if len(tops) != 1:
                raise BundleError(archive, f"a bundle archive holds one folder, this one {sorted(tops)}")
            for m in members:
                parts = m.name.split("/")
                if m.isdir() and len(parts) == 1:
                    continue
                if not m.isfile() or len(parts) != 2 or parts[1] in ("", ".", "..") or parts[1].startswith("/"):
                    raise BundleError(archive, f"member {m.name!r} is not a plain file of the bundle folder")
                f = tar.extractfile(m)
                with open(dest / parts[1], "wb") as out:
                    shutil.copyfileobj(f, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
        if not (dest / MANIFEST).is_file():
            raise BundleError(archive, "holds no bundle.toml")
        allowed = set(_manifest_files(dest / MANIFEST))
        extra = sorted(p.name for p in dest.iterdir() if p.name not in allowed and p.name != "engines")
        if extra:
            raise BundleError(archive, f"holds files its bundle.toml does not list: {', '.join(extra)}")

    def adopt(self, staged: Path) -> Path:
        """Move a verified staging copy to ``versions/<name>/<version>-<sha8>``; the same version already there is reused."""
        v = self.describe(staged)
        final = self.root / "versions" / v.name / f"{v.version}-{v.manifest_sha256[:8]}"
        final.parent.mkdir(parents=True, exist_ok=True)
        if (final / MANIFEST).is_file():
            shutil.rmtree(staged)
            return final
        for p in staged.iterdir():
            if p.is_file():
                p.chmod(0o444)
        os.rename(staged, final)
        _fsync_dir(final.parent)
        return final

    def relative(self, path: Path) -> str:
        return os.path.relpath(path, self.root)

    def prune(self, name: str, keep: int = 3) -> list[Path]:
        """Remove old versions beyond the newest ``keep`` (never the active or previous one)."""
        folder = self.root / "versions" / name
        if not folder.is_dir():
            return []
        pinned = {self._target(self.active_link(name)), self._target(self.previous_link(name))}
        pinned = {str((self.root / t).resolve()) for t in pinned if t}
        old = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]
        removed = []
        for p in old:
            if str(p.resolve()) not in pinned:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
        return removed

    # -- switching ---------------------------------------------------------------------
    def pending(self) -> Transaction | None:
        try:
            return Transaction(**json.loads(self.journal.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as exc:
            raise BundleError(self.journal, f"unreadable transaction record ({exc}); remove it after checking `bundle list`") from None

    def switch(self, name: str, target: Path, op: str = "install") -> Transaction:
        """Record the switch, then make ``target`` active and the old active the previous slot."""
        if self.pending() is not None:
            raise BundleError(self.journal, "an earlier switch is not confirmed; run `edge-ecg bundle recover` first")
        tx = Transaction(op, name, self.relative(target), self._target(self.active_link(name)), self._target(self.previous_link(name)), _now(), os.getpid())
        tmp = self.journal.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(tx.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.journal)
        _fsync_dir(self.root)
        new_previous = tx.from_active if tx.from_active != tx.to else tx.from_previous
        self._set_link(self.previous_link(name), new_previous)
        self._set_link(self.active_link(name), tx.to)
        return tx

    def confirm(self, tx: Transaction, **note: Any) -> None:
        self.record(tx.op, name=tx.name, to=tx.to, **{"from": tx.from_active}, result="confirmed", **note)
        self._end(tx)

    def revert(self, tx: Transaction, reason: str, result: str = "rolled back") -> None:
        """Put both links back as they were before ``tx`` and say why in the history."""
        self._set_link(self.active_link(tx.name), tx.from_active)
        self._set_link(self.previous_link(tx.name), tx.from_previous)
        self.record(tx.op, name=tx.name, to=tx.to, **{"from": tx.from_active}, result=result, reason=reason)
        self._end(tx)

    def _end(self, tx: Transaction) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.journal)
        _fsync_dir(self.root)

    def recover(self) -> Transaction | None:
        """Undo a switch its installer did not live to confirm (``kill -9``, power cut); clean staging."""
        self.clean_staging()
        tx = self.pending()
        if tx is None:
            return None
        self.revert(tx, f"the {tx.op} started {tx.started} by pid {tx.pid} ended before the daemon was confirmed healthy", result="recovered")
        return tx

    # -- history -----------------------------------------------------------------------
    def record(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": _now(), "event": event, **fields}, sort_keys=False) + "\n"
        with open(self.history_file, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def history(self, last: int = 20) -> list[dict[str, Any]]:
        try:
            lines = self.history_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines[-last:]:
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out
