"""A flat folder of files at a location (:mod:`lakehouse.locations`): a local folder, or the objects directly under an
``s3://bucket/prefix/``. The landing zone (:class:`lakehouse.tables.Landing`), bronze ingestion, the landing sensor
and ``lakehouse land`` use only these few operations, so the same code serves both kinds:

| operation             | local folder                              | S3 prefix (obstore)                             |
|-----------------------|-------------------------------------------|-------------------------------------------------|
| :meth:`Folder.entries`| files directly inside (``iterdir``)       | ``list_with_delimiter`` (no sub-"folders")      |
| :meth:`Folder.read`   | ``read_bytes``                            | ``get`` (whole object)                          |
| :meth:`Folder.write`  | ``<name>.part``, then ``os.replace``      | one ``put`` (S3 shows an object only whole)     |
| :meth:`Folder.copy_in`| ``shutil.copy2`` (bytes and times)        | server-side ``copy`` within a bucket            |
| :meth:`Folder.exists` | ``is_file``                               | ``head``                                        |

Nothing here deletes: the landing zone is never deleted from.

An :class:`Entry` carries what the landing sensor judges stability by, kept parallel for both kinds: a local
file's change time (``max(mtime, ctime)``, ns) with no ``version``, so it is stable once untouched for a settle
time; an object's last-modified time (ns) with ``version = "<size>:<ETag>"``, so it is stable when its version is
unchanged since the sensor's previous look (:mod:`lakehouse.bronze.sensors`).

obstore (the Rust ``object_store`` crate delta-rs and polars use too) is the object-store client: one set of
storage options (:func:`lakehouse.locations.object_store`) means the same endpoint and credentials everywhere.
Missing objects raise ``FileNotFoundError``, like missing files (obstore 0.12).
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse import locations

if TYPE_CHECKING:
    from obstore.store import S3Store


@dataclass(frozen=True)
class Entry:
    """One file of a folder: ``name`` (no folder part), ``size`` (bytes), ``changed_ns`` (local: change time
    ``max(mtime, ctime)``; object: last-modified; ns since the epoch), ``version`` (object: ``"<size>:<ETag>"``;
    None for a local file)."""

    name: str
    size: int
    changed_ns: int
    version: str | None = None

    @property
    def fingerprint(self) -> str:
        """What changes whenever the file's bytes do, read from the listing alone: an object's ``version`` (size
        and ETag); a local file's ``"<size>:<changed_ns>"`` (a write sets ``ctime``, which no user can set back).
        A local file rewritten with the same size within one tick of the filesystem's clock keeps its fingerprint:
        :mod:`lakehouse.bronze.ingest` trusts a local fingerprint only for a file unchanged for a while."""
        return self.version if self.version is not None else f"{self.size}:{self.changed_ns}"


class Folder(ABC):
    """A flat folder at ``location`` (module docstring); names are plain file names, never paths."""

    def __init__(self, location: str):
        self.location = location

    def path(self, name: str) -> str:
        """The location of the file ``name`` (``<folder>/<name>``)."""
        return f"{self.location.rstrip('/')}/{name}"

    @abstractmethod
    def entries(self) -> list[Entry]:
        """The files directly in the folder, sorted by name (``[]`` when the folder does not exist)."""

    @abstractmethod
    def read(self, name: str) -> bytes:
        """The bytes of ``name``.

        Raises:
            FileNotFoundError: no such file.
        """

    @abstractmethod
    def write(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``name`` atomically (readers see the old file or the whole new one); return its
        location."""

    @abstractmethod
    def copy_in(self, source: Folder, name: str) -> str:
        """Copy ``source``'s file ``name`` intact into this folder under the same name; return the copy's location.

        Raises:
            FileNotFoundError: ``source`` has no such file.
        """

    @abstractmethod
    def exists(self, name: str) -> bool:
        """True when the file ``name`` exists."""


class LocalFolder(Folder):
    """A local folder (created by the first write)."""

    def entries(self) -> list[Entry]:
        folder = Path(self.location)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.iterdir()):
            try:
                st = path.stat()
            except OSError:
                continue  # gone since the listing
            if path.is_file():
                out.append(Entry(path.name, st.st_size, max(st.st_mtime_ns, st.st_ctime_ns)))
        return out

    def read(self, name: str) -> bytes:
        return (Path(self.location) / name).read_bytes()

    def write(self, name: str, data: bytes) -> str:
        target = Path(self.location) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        part.write_bytes(data)
        os.replace(part, target)
        return str(target)

    def copy_in(self, source: Folder, name: str) -> str:
        target = Path(self.location) / name
        if isinstance(source, LocalFolder):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(source.location) / name, target)
            return str(target)
        return self.write(name, source.read(name))

    def exists(self, name: str) -> bool:
        return (Path(self.location) / name).is_file()


class ObjectFolder(Folder):
    """The objects directly under ``s3://bucket/prefix/`` (a "folder" exists once an object is under it)."""

    def __init__(self, location: str):
        super().__init__(location)
        self.bucket, self.prefix = locations.split(location)
        self._store: S3Store | None = None

    @property
    def store(self) -> S3Store:
        if self._store is None:
            self._store = locations.object_store(self.location)
        return self._store

    def key(self, name: str) -> str:
        """The bucket-relative key of ``name``."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def entries(self) -> list[Entry]:
        import obstore

        listed = obstore.list_with_delimiter(self.store, prefix=f"{self.prefix}/" if self.prefix else None)
        out = []
        for meta in listed["objects"]:
            name = meta["path"].rsplit("/", 1)[-1]
            changed = int(meta["last_modified"].timestamp() * 1_000_000) * 1000
            out.append(Entry(name, int(meta["size"]), changed, f"{meta['size']}:{meta['e_tag']}"))
        return sorted(out, key=lambda e: e.name)

    def read(self, name: str) -> bytes:
        import obstore

        return bytes(obstore.get(self.store, self.key(name)).bytes())

    def write(self, name: str, data: bytes) -> str:
        import obstore

        obstore.put(self.store, self.key(name), data)
        return self.path(name)

    def copy_in(self, source: Folder, name: str) -> str:
        import obstore

        if isinstance(source, ObjectFolder) and source.bucket == self.bucket:
            obstore.copy(self.store, source.key(name), self.key(name))
            return self.path(name)
        return self.write(name, source.read(name))

    def exists(self, name: str) -> bool:
        import obstore

        try:
            obstore.head(self.store, self.key(name))
        except FileNotFoundError:
            return False
        return True


def object_sizes(location: str) -> dict[str, int]:
    """Every object under the ``s3://`` ``location`` (at any depth), as its path relative to ``location`` -> size in
    bytes (a Delta table's data files, for damage checks).

    Raises:
        ValueError: ``location`` is not an ``s3://`` location.
    """
    import obstore

    bucket_prefix = locations.split(location)[1]
    prefix = f"{bucket_prefix}/" if bucket_prefix else ""
    store = locations.object_store(location)
    return {
        meta["path"].removeprefix(prefix): int(meta["size"])
        for batch in obstore.list(store, prefix=prefix or None)
        for meta in batch
    }


def open_folder(location: str) -> Folder:
    """The :class:`Folder` at ``location`` (an absolute path or ``s3://bucket/prefix``, as
    :func:`lakehouse.locations.parse` returns them)."""
    return ObjectFolder(location) if locations.is_object_store(location) else LocalFolder(location)
