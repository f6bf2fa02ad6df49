"""The data plane stands alone: nothing under serving/ imports Django or a control-plane app, so a task's
pods need neither, and the control plane talks to them only over HTTP."""

import ast
import subprocess
import sys
from pathlib import Path

SERVING = Path(__file__).resolve().parents[2] / "serving"
FORBIDDEN = {
    "django",
    "rest_framework",
    "controlplane",
    "tenancy",
    "compute_pools",
    "gateways",
    "catalog",
    "inference_jobs",
}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_no_module_of_the_data_plane_imports_the_control_plane():
    offenders = {
        str(path.relative_to(SERVING.parent)): sorted(imported_roots(path) & FORBIDDEN)
        for path in SERVING.rglob("*.py")
        if imported_roots(path) & FORBIDDEN
    }
    assert offenders == {}


def test_importing_every_serving_module_loads_no_django():
    script = (
        "import importlib, pkgutil, sys, serving\n"
        "for info in pkgutil.walk_packages(serving.__path__, 'serving.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'controlplane', 'tenancy'})\n"
        "assert not leaked, leaked\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=SERVING.parent
    )
    assert result.returncode == 0, result.stderr
