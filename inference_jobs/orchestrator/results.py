"""What a backend reports back to the reconciler, whatever it deploys on (Kubernetes objects, local processes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Observation:
    """What a task's instances are doing: a ``TaskStatus`` value, a reason (event-style) and a human message."""

    status: str
    reason: str
    message: str = ""
    ready: int = 0


@dataclass
class SweepResult:
    observations: dict[int, Observation] = field(default_factory=dict)  # task id → what runs
    removed: set[int] = field(default_factory=set)  # deleting tasks of which nothing is left
    errors: dict[int, Exception] = field(default_factory=dict)  # task id → why it could not converge this pass
    orphans_deleted: int = 0
