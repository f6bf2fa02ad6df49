"""Unpacking a model archive (.tar, .tar.gz/.tgz, .zip) without trusting it.

An archive is a list of names and bytes chosen by whoever made it. Extraction here writes regular files and
folders only, each under the destination: a member with an absolute path, a ``..`` step, a link or a
device is refused, and so is the whole archive, before the model exists. Bytes are counted as they are
written, so an archive that expands past the upload limit (a "zip bomb") stops at the limit rather than
filling the disk. Each file is hashed while it is written, so the folder's digest costs no second read.
(``tarfile``'s ``extractall(filter="data")`` would still accept links inside the folder and neither counts
nor hashes, and zip files have no such filter: one streaming loop serves both formats.)
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from catalog.constants import COPY_CHUNK_BYTES, MAX_ARCHIVE_MEMBERS
from catalog.paths import UnsafePathError, safe_relative_path


class ArchiveError(ValueError):
    """The archive is unusable; the message says why, for the uploader."""


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


def copy_hashing(source: BinaryIO, destination: Path, *, budget: int, on_exceed) -> FileDigest:
    """Copy ``source`` to a new file at ``destination``, hashing it; ``on_exceed()`` raises once more than
    ``budget`` bytes arrive."""
    digest = hashlib.sha256()
    size = 0
    with destination.open("xb") as out:
        while chunk := source.read(COPY_CHUNK_BYTES):
            size += len(chunk)
            if size > budget:
                raise on_exceed()
            digest.update(chunk)
            out.write(chunk)
    return FileDigest(size=size, sha256=digest.hexdigest())


@dataclass(frozen=True)
class _Member:
    name: str
    is_dir: bool
    open: Callable[[], BinaryIO] | None


def _tar_members(archive: tarfile.TarFile) -> Iterator[_Member]:
    for member in archive:
        if member.isdir():
            yield _Member(member.name, True, None)
        elif member.isreg():
            yield _Member(member.name, False, lambda member=member: archive.extractfile(member))
        else:
            kind = "link" if member.issym() or member.islnk() else "special file"
            raise ArchiveError(f"'{member.name}' is a {kind}; a model archive may hold only files and folders.")


def _zip_members(archive: zipfile.ZipFile) -> Iterator[_Member]:
    for info in archive.infolist():
        if info.filename.startswith("__MACOSX/"):  # resource forks added by macOS's Finder
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode) or (stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))):
            raise ArchiveError(f"'{info.filename}' is a link or special file; a model archive may hold only files.")
        if info.flag_bits & 0x1:
            raise ArchiveError(f"'{info.filename}' is password-protected; upload the archive without a password.")
        if info.is_dir():
            yield _Member(info.filename, True, None)
        else:
            yield _Member(info.filename, False, lambda info=info: archive.open(info))


def _open(source: BinaryIO):
    """The archive as a context manager of members, recognised by its content rather than its file name."""
    source.seek(0)
    if zipfile.is_zipfile(source):
        source.seek(0)
        return zipfile.ZipFile(source), _zip_members
    source.seek(0)
    try:
        return tarfile.open(fileobj=source, mode="r:*"), _tar_members
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError("This is not a .tar, .tar.gz/.tgz or .zip archive.") from exc


def extract_archive(source: BinaryIO, destination: Path, *, max_bytes: int) -> dict[str, FileDigest]:
    """Extract ``source`` into the empty folder ``destination``; returns ``{relative path: digest}``.

    Raises ArchiveError (and leaves whatever was written for the caller to discard) on the first unsafe
    member, on an archive that expands past ``max_bytes``, or on one that is not an archive at all.
    """
    archive, members = _open(source)
    written: dict[str, FileDigest] = {}
    used = 0
    try:
        with archive:
            for count, member in enumerate(members(archive), start=1):
                if count > MAX_ARCHIVE_MEMBERS:
                    raise ArchiveError(f"The archive has more than {MAX_ARCHIVE_MEMBERS} members.")
                used += _extract_member(member, destination, written, budget=max_bytes - used, max_bytes=max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError) as exc:
        raise ArchiveError(f"The archive is damaged: {exc}") from exc
    if not written:
        raise ArchiveError("The archive holds no files.")
    return written


def _extract_member(
    member: _Member, destination: Path, written: dict[str, FileDigest], *, budget: int, max_bytes: int
) -> int:
    """Write one member under ``destination``; returns the bytes written."""
    try:
        relative = safe_relative_path(member.name)
    except UnsafePathError as exc:
        raise ArchiveError(f"'{member.name}': {exc}.") from exc
    if relative is None:  # the archive's own "./" entry
        return 0
    target = destination / relative
    try:
        if member.is_dir:
            target.mkdir(parents=True, exist_ok=True)
            return 0
        if relative in written:
            raise ArchiveError(f"'{relative}' appears twice in the archive.")
        target.parent.mkdir(parents=True, exist_ok=True)
        with member.open() as stream:
            written[relative] = copy_hashing(
                stream,
                target,
                budget=budget,
                on_exceed=lambda: ArchiveError(f"The archive expands to more than {max_bytes} bytes."),
            )
        return written[relative].size
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise ArchiveError(f"'{relative}' is both a file and a folder in the archive.") from exc
