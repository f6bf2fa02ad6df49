"""Write docker/controlplane.requirements.txt: the control-plane image's dependencies, pinned.

``python docker/lock.py`` (with ``.venv/bin/python``, after ``make install``) pins every distribution that
``aicp[production]`` needs, directly or not, at the version installed here, i.e. the versions the test suite ran
against. The image installs exactly that list (``pip install --requirement``), so a rebuild does not pick up a
new release by surprise; tests/test_packaging.py checks the list against pyproject.toml's ranges.

Markers are evaluated for this interpreter, so run it on the image's Python (3.11) on Linux.
"""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "docker" / "controlplane.requirements.txt"
EXTRAS = ("production",)
PYTHON = (3, 11)
HEADER = """\
# The control-plane image's Python dependencies (docker/controlplane.Dockerfile), pinned: aicp[production] and
# everything it needs, at the versions the test suite runs against. Written by `python docker/lock.py`; do not
# edit by hand. tests/test_packaging.py checks every pin against pyproject.toml.
"""


def root_requirements(pyproject: Path = ROOT / "pyproject.toml", extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """aicp's own requirements with ``extras``, as pyproject.toml declares them (not the installed metadata,
    which is only as new as the last ``pip install -e``)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    return requirements


def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = default_environment()
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras | {""})


def closure(requirements: list[str]) -> dict[str, str]:
    """``{name: installed version}`` for ``requirements`` and, recursively, what they require (extras included)."""
    pinned: dict[str, str] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(text), frozenset()) for text in requirements]
    while todo:
        requirement, parent_extras = todo.pop()
        if not _applies(requirement, parent_extras):
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset(requirement.extras)
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError as exc:
            raise SystemExit(f"{requirement.name} is not installed here: run `make install` first.") from exc
        pinned[name] = dist.version
        todo += [(Requirement(text), extras) for text in dist.requires or []]
    return pinned


def render(pinned: dict[str, str]) -> str:
    return HEADER + "".join(f"{name}=={pinned[name]}\n" for name in sorted(pinned))


def main() -> None:
    if sys.version_info[:2] != PYTHON:
        raise SystemExit(f"Run this with Python {PYTHON[0]}.{PYTHON[1]}, the image's: markers depend on it.")
    LOCK.write_text(render(closure(root_requirements())))
    print(f"wrote {LOCK.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
