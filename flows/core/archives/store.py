"""Where dumps live: a local (or shared, mounted) directory or an object store reached through fsspec.

Both kinds publish atomically: a partial file or object under a name its writer owns, then

- a directory: fsync, ``rename`` over the final name, fsync the directory (a crash leaves the old
  file or the new one); the writer holds an exclusive ``flock`` on its partial file meanwhile, so
  a cleaner never removes a file that is still being written;
- an object store: the partial object appears only when its upload completes; it is copied to the
  final name inside the store, the copy's size compared, then the partial removed. A small object
  (a manifest) is one PUT: whole or absent.

Store errors other than "not found" become InfrastructureError (exit 3) naming the store's location
(a path or a URL without credentials), never its keys.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from flows.core.archives.credentials import s3_options
from flows.core.errors import ConfigError, InfrastructureError
from flows.core.policy.archives import URL, ArchiveStorage, check_location

ArchiveRef = Path | str  # a manifest (or data file) in a directory, or its URL in an object store
AfterWrite = Callable[[], None]


def _nothing() -> None:
    return None


class Store(ABC):
    """A flat namespace of files (names without ``/``) under one location."""

    location: str

    @abstractmethod
    def ref(self, name: str) -> ArchiveRef: ...

    @abstractmethod
    def child(self, name: str) -> Store: ...

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def read_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def open_read(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]: ...

    @abstractmethod
    def write(
        self, partial: str, final: str, after_write: AfterWrite = _nothing
    ) -> contextlib.AbstractContextManager[IO[bytes]]:
        """Write ``partial`` (owned by the caller); on a clean exit call ``after_write`` and publish
        it as ``final``. An error inside leaves the partial for its owner's successor to remove."""

    @abstractmethod
    def put_atomic(self, name: str, data: bytes, partial: str) -> None: ...

    @abstractmethod
    def remove(self, name: str) -> None: ...

    @abstractmethod
    def names(self, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def in_use(self, name: str) -> bool:
        """True when a live writer still holds ``name`` (a directory's flock; unknown for objects)."""


@contextlib.contextmanager
def _store_errors(location: str, client_errors: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """OSError (and the object store client's own errors) as InfrastructureError; not-found passes."""
    caught: tuple[type[Exception], ...] = (OSError, *client_errors)
    try:
        yield
    except FileNotFoundError:
        raise
    except caught as exc:
        raise InfrastructureError(f"archive store {location}: {type(exc).__name__}: {exc}") from None


def _client_errors(scheme: str) -> tuple[type[Exception], ...]:
    if scheme != "s3":
        return ()
    from botocore import exceptions  # noqa: PLC0415 - s3fs brings botocore; only object stores need it

    return (exceptions.BotoCoreError, exceptions.ClientError)


class LocalStore(Store):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def ref(self, name: str) -> Path:
        return self.root / name

    def child(self, name: str) -> LocalStore:
        return LocalStore(self.root / name)

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def size(self, name: str) -> int:
        return (self.root / name).stat().st_size

    def read_bytes(self, name: str) -> bytes:
        with _store_errors(self.location):
            return (self.root / name).read_bytes()

    @contextlib.contextmanager
    def open_read(self, name: str) -> Iterator[IO[bytes]]:
        with _store_errors(self.location):
            fh = (self.root / name).open("rb")
        with fh:  # what the reader makes of the bytes (a bad gzip) is the reader's to say
            yield fh

    @contextlib.contextmanager
    def write(self, partial: str, final: str, after_write: AfterWrite = _nothing) -> Iterator[IO[bytes]]:
        with _store_errors(self.location):
            self.root.mkdir(parents=True, exist_ok=True)
            with (self.root / partial).open("wb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # released when the file closes
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
                after_write()
                self._replace(partial, final)

    def _replace(self, partial: str, final: str) -> None:
        (self.root / partial).replace(self.root / final)
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def put_atomic(self, name: str, data: bytes, partial: str) -> None:
        with self.write(partial, name) as fh:
            fh.write(data)

    def remove(self, name: str) -> None:
        with _store_errors(self.location), contextlib.suppress(FileNotFoundError):
            (self.root / name).unlink()

    def names(self, prefix: str = "") -> list[str]:
        with _store_errors(self.location):
            if not self.root.is_dir():
                return []
            return sorted(p.name for p in self.root.iterdir() if p.name.startswith(prefix) and p.is_file())

    def in_use(self, name: str) -> bool:
        try:
            fd = os.open(self.root / name, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock we took
        return False


class RemoteStore(Store):
    """An fsspec filesystem (``s3://`` through s3fs) under ``root`` (``bucket/prefix``)."""

    def __init__(self, fs: Any, scheme: str, root: str) -> None:
        self.fs = fs
        self.scheme = scheme
        self.root = root.strip("/")
        self.location = f"{scheme}://{self.root}"
        self.client_errors = _client_errors(scheme)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        return _store_errors(self.location, self.client_errors)

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def ref(self, name: str) -> str:
        return f"{self.location}/{name}"

    def child(self, name: str) -> RemoteStore:
        return RemoteStore(self.fs, self.scheme, self._path(name))

    def exists(self, name: str) -> bool:
        with self._errors():
            return bool(self.fs.isfile(self._path(name)))

    def size(self, name: str) -> int:
        with self._errors():
            return int(self.fs.size(self._path(name)))

    def read_bytes(self, name: str) -> bytes:
        with self._errors():
            return bytes(self.fs.cat_file(self._path(name)))

    @contextlib.contextmanager
    def open_read(self, name: str) -> Iterator[IO[bytes]]:
        with self._errors():
            fh = self.fs.open(self._path(name), "rb")
        with fh:
            yield fh

    @contextlib.contextmanager
    def write(self, partial: str, final: str, after_write: AfterWrite = _nothing) -> Iterator[IO[bytes]]:
        with self._errors():
            with self.fs.open(self._path(partial), "wb") as fh:
                yield fh
            # the upload has completed: the partial object exists whole
            after_write()
            self.fs.copy(self._path(partial), self._path(final))
            if self.size(final) != self.size(partial):
                raise InfrastructureError(f"archive store {self.location}: the copy of {partial} is short")
            self.fs.rm_file(self._path(partial))

    def put_atomic(self, name: str, data: bytes, partial: str) -> None:
        del partial  # one PUT: the object appears whole or not at all
        with self._errors():
            self.fs.pipe_file(self._path(name), data)

    def remove(self, name: str) -> None:
        with self._errors(), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(name))

    def names(self, prefix: str = "") -> list[str]:
        with self._errors():
            try:
                if self.scheme == "s3":  # listed by the server from the prefix (one request a page)
                    found = self.fs.find(self.root, prefix=prefix, detail=True)
                    entries = list(found.values()) if isinstance(found, dict) else []
                else:
                    entries = self.fs.ls(self.root, detail=True)
            except FileNotFoundError:
                return []
        here = f"{self.root}/"
        out = (
            str(e["name"]).removeprefix(here)
            for e in entries
            if e.get("type") == "file" and str(e["name"]).startswith(here)
        )
        return sorted(n for n in out if n.startswith(prefix) and "/" not in n)

    def in_use(self, name: str) -> bool:
        del name  # an object being uploaded is invisible until complete: nothing to protect here
        return False


def open_store(location: str | Path, storage: ArchiveStorage | None = None) -> Store:
    """The store of a ``dump_dir``: a path (or ``file://``) or an fsspec URL."""
    text = str(location)
    try:
        check_location(text)
    except ValueError as exc:
        raise ConfigError(f"dump_dir: {exc}") from None
    match = URL.match(text)
    if match is None:
        return LocalStore(Path(text))
    scheme, rest = match["scheme"], match["rest"]
    if scheme == "file":
        return LocalStore(Path("/" + rest.lstrip("/")))
    import fsspec  # noqa: PLC0415 - only object stores need it

    options = s3_options(storage or ArchiveStorage()) if scheme == "s3" else {}
    try:
        fs = fsspec.filesystem(scheme, **options)
    except ImportError as exc:
        raise ConfigError(f"dump_dir {scheme}:// needs a package that is not installed: {exc.name}") from None
    return RemoteStore(fs, scheme, rest)


def locate(ref: ArchiveRef, storage: ArchiveStorage | None = None) -> tuple[Store, str]:
    """The store holding a manifest (a path or a URL) and the manifest's name in it."""
    if isinstance(ref, Path):
        return LocalStore(ref.parent), ref.name
    parent, _, name = ref.rstrip("/").rpartition("/")
    if not name or (URL.match(ref) and not URL.match(parent)):
        raise ConfigError(f"{ref!r} does not name a manifest")
    if URL.match(ref) is None:
        return LocalStore(Path(ref).parent), Path(ref).name
    return open_store(parent, storage), name


def policy_store(dump_dir: str | None, storage: ArchiveStorage, state_dir: Path) -> Store:
    """The store of ``[retention] dump_dir`` (default: ``<state dir>/archive``)."""
    return open_store(dump_dir if dump_dir is not None else state_dir / "archive", storage)
