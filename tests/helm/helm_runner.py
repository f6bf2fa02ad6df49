"""Runs Helm's own engine (the ``helm-sdkpy`` bindings of Helm's Go library) for the chart tests; prints JSON.

    python -m tests.helm.helm_runner lint CHART
    python -m tests.helm.helm_runner install CHART RELEASE NAMESPACE KUBECONFIG VALUES_JSON [UPGRADE_VALUES_JSON]

It runs in a process of its own, started with ``HELM_DRIVER=memory``: Helm keeps its release records in memory
instead of in protobuf-encoded Secrets, which the API-server emulator cannot decode, and the Go library reads the
variable when it loads. ``install`` installs the chart against the cluster of KUBECONFIG (the emulator) without
waiting for the pods (there are none: the emulator runs no controllers), but Helm still waits for its hooks (the
migration Job). With UPGRADE_VALUES_JSON the same process then upgrades the release, as ``helm upgrade`` would.
"""

from __future__ import annotations

import asyncio
import json
import sys

import helm_sdkpy


def lint(chart: str) -> dict:
    return asyncio.run(helm_sdkpy.Lint(helm_sdkpy.Configuration()).run(chart))


def install(chart: str, release: str, namespace: str, kubeconfig: str, values: str, upgrade: str = "") -> dict:
    config = helm_sdkpy.Configuration(namespace=namespace, kubeconfig=kubeconfig)
    result = {"install": _release(helm_sdkpy.Install(config), release, chart, values)}
    if upgrade:
        result["upgrade"] = _release(helm_sdkpy.Upgrade(config), release, chart, upgrade)
    return result


def _release(action, release: str, chart: str, values_path: str) -> dict:
    with open(values_path) as values:
        return asyncio.run(action.run(release, chart, values=json.load(values), wait=False, timeout=60))


def main(argv: list[str]) -> int:
    command, *args = argv
    try:
        result = {"lint": lint, "install": install}[command](*args)
    except helm_sdkpy.HelmError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
