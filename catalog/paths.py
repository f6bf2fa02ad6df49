"""Paths inside a model folder, as uploaders name them (a file part's name, an archive member)."""

from __future__ import annotations

import re

MAX_PATH_LENGTH = 1000
MAX_PART_LENGTH = 255
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(ValueError):
    pass


def safe_relative_path(name: str) -> str | None:
    """``name`` as a clean relative path ("tokenizer/vocab.json"), or None for the folder itself ("./").

    Refused: absolute and drive paths, a ``..`` step, backslashes (a Windows separator that POSIX would keep
    as part of a file name), control characters and over-long names. Whatever passes stays inside the folder
    it is joined to.
    """
    if any(ord(char) < 32 for char in name):
        raise UnsafePathError("the path contains control characters")
    if "\\" in name:
        raise UnsafePathError("the path uses backslashes; separate folders with /")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafePathError("the path is absolute; paths must be relative to the model folder")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError("the path leaves the model folder (..)")
    if len(name) > MAX_PATH_LENGTH or any(len(part) > MAX_PART_LENGTH for part in parts):
        raise UnsafePathError("the path is too long")
    return "/".join(parts) or None
