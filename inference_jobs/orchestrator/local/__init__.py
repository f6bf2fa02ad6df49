"""The ``local`` orchestrator backend: a task's instances as engine and adapter processes on this machine.

``backend.py`` converges tasks (``LocalBackend``); ``runfolder.py`` is what it keeps on disk per task;
``processes.py`` starts, recognises, checks and stops processes. ``stop_all`` is for whoever supervises the
embedded default (``make run``): on its way out it stops every task's processes, leaving run folders and the
database alone, so the next sweep brings the tasks back. See ``docs/local.md``.
"""

from __future__ import annotations

from pathlib import Path

from inference_jobs.orchestrator.local import processes
from inference_jobs.orchestrator.local.runfolder import task_folders


def stop_all(run_dir: Path | str | None = None) -> int:
    """Stop every process of every task under ``run_dir`` (default ``AICP_LOCAL_RUN_DIR``); returns how many
    were running. Each task's state forgets them, so their next start counts as a first start, not a restart."""
    if run_dir is None:
        from django.conf import settings

        run_dir = settings.AICP_LOCAL_RUN_DIR
    identities: list[processes.Identity] = []
    for folder in task_folders(Path(run_dir)).values():
        with folder.locked():
            state = folder.load()
            identities += state.running()
            for instance in state.instances.values():
                for proc in instance.processes().values():
                    proc.forget()
                instance.ready, instance.health_failures = False, 0
            folder.save(state)
    for tagged in processes.find_tagged(Path(run_dir)).values():
        identities += tagged
    return processes.stop(identities) if identities else 0
