"""Content-addressed artifacts: bytes and directories (a saved model) keyed by sha256.

The backend stores the bytes (in the same database as the data); this module packs
directories reproducibly, checks hashes on the way back, and unpacks into a local
cache so that a model is extracted once per machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import typing as t
from pathlib import Path

from pinnacle.errors import PinnacleError

__all__ = ["ArtifactRef", "ArtifactStore", "StoredFolder", "pack_directory", "pack_directory_cached", "sha256_of", "cache_dir", "IntegrityError"]


class IntegrityError(PinnacleError):
    """An artifact's bytes do not match its sha256."""


class ArtifactStore(t.Protocol):
    """What a backend provides to keep artifacts."""

    def put_artifact(self, sha256: str, data: bytes) -> None: ...
    def get_artifact(self, sha256: str) -> bytes: ...
    def has_artifact(self, sha256: str) -> bool: ...


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    """Where artifacts are unpacked: ``$PINNACLE_CACHE`` or ``~/.cache/pinnacle``."""
    root = os.environ.get("PINNACLE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "pinnacle")
    return Path(root) / "artifacts"


def pack_directory(path: str | os.PathLike) -> bytes:
    """A reproducible tar of ``path``: sorted names, no owners, zero mtimes."""
    root = Path(path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in sorted(p for p in root.rglob("*")):
            rel = file.relative_to(root).as_posix()
            if rel.startswith(".git/") or rel == ".git" or file.is_symlink() and not file.exists():
                continue
            info = tar.gettarinfo(str(file), arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if file.is_dir():
                tar.addfile(info)
            elif file.is_file():
                info.type = tarfile.REGTYPE
                info.size = file.stat().st_size
                with open(file, "rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


_packed: dict[tuple, tuple[str, bytes]] = {}


def pack_directory_cached(path: str | os.PathLike) -> tuple[str, bytes]:
    """``(sha256, tar bytes)`` of ``path``, reusing the last pack while no file in it changed."""
    root = Path(path).resolve()
    signature = tuple(
        (p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and (st := p.stat())
    )
    key = (str(root), signature)
    found = _packed.get(key)
    if found is None:
        data = pack_directory(root)
        found = (sha256_of(data), data)
        _packed.clear()  # keep one model's bytes at most
        _packed[key] = found
    return found


class ArtifactRef:
    """A lazy handle on a stored artifact; bytes are fetched and checked on first use."""

    def __init__(self, sha256: str, kind: str, store: ArtifactStore):
        self.sha256 = sha256
        self.kind = kind
        self._store = store

    def to_json(self) -> dict:
        return {"_ref": "artifact", "sha256": self.sha256, "kind": self.kind}

    def read_bytes(self) -> bytes:
        data = self._store.get_artifact(self.sha256)
        if sha256_of(data) != self.sha256:
            raise IntegrityError(
                f"Artifact {self.sha256} is corrupt: the bytes stored for it do not hash to its sha256 "
                "(altered or truncated in the metadata store). Delete its stored copy (the entries with this "
                "sha256 in _pinnacle_artifacts), then re-apply the component that owns it to store the bytes again."
            )
        return data

    def path(self) -> Path:
        """A local directory with the artifact unpacked (``kind == 'dir'``), cached by sha256."""
        if self.kind != "dir":
            raise PinnacleError(f"Artifact {self.sha256[:12]} is {self.kind!r}, not a directory.")
        target = cache_dir() / self.sha256
        if (target / ".complete").exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # left half-written by a crashed process
            shutil.rmtree(target, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
        try:
            with tarfile.open(fileobj=io.BytesIO(self.read_bytes()), mode="r") as tar:
                tar.extractall(tmp, filter="data")
            (tmp / ".complete").touch()
            try:
                os.replace(tmp, target)
            except OSError:  # another process won the race
                shutil.rmtree(tmp, ignore_errors=True)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def __repr__(self) -> str:
        return f"ArtifactRef({self.sha256[:12]}, kind={self.kind!r})"


class StoredFolder:
    """A folder artifact (a model's weights, an ONNX export): made in a temporary folder
    at the first apply, read back from the store after that.

    Args:
        name: The artifact's name in the component's record (``"model"`` by default).

    Example:
        >>> weights = StoredFolder()
        >>> weights.dump(lambda folder: None, prefix="pinnacle-example-")  # doctest: +ELLIPSIS
        {'model': PosixPath('.../pinnacle-example-...')}
    """

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.ref: t.Optional[ArtifactRef] = None
        self._temporary: t.Optional[str] = None

    def folder(self, make: t.Callable[[str], t.Any], prefix: str) -> Path:
        """The stored copy (unpacked), else a temporary folder filled by ``make(folder)`` once."""
        if self.ref is not None:
            return self.ref.path()
        if self._temporary is None:
            folder = tempfile.mkdtemp(prefix=prefix)
            try:
                make(folder)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            self._temporary = folder
        return Path(self._temporary)

    def dump(self, make: t.Callable[[str], t.Any], prefix: str) -> dict[str, t.Any]:
        """``{name: ref}`` once stored; otherwise ``{name: folder}`` (see :meth:`folder`)."""
        if self.ref is not None:
            return {self.name: self.ref}
        return {self.name: self.folder(make, prefix)}

    def current(self) -> dict[str, t.Any]:
        """``{name: ref}`` once stored, ``{name: folder}`` once made, else ``{}``."""
        if self.ref is not None:
            return {self.name: self.ref}
        return {self.name: Path(self._temporary)} if self._temporary is not None else {}

    def adopt(self, artifacts: dict[str, t.Any]) -> None:
        """Keep the stored ref of this name; the temporary copy, now packed, is removed."""
        ref = artifacts.get(self.name)
        if not isinstance(ref, ArtifactRef):
            return
        self.ref = ref
        if self._temporary is not None:
            shutil.rmtree(self._temporary, ignore_errors=True)
            self._temporary = None
