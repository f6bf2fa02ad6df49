"""The ``kubernetes`` orchestrator: converge a cluster to the rendered objects, and read back what runs.

Level-based: each pass renders what a task should have, compares it with what the API server holds, and writes
only the difference (create when missing, a JSON merge patch when different, nothing when equal), so a pass
over unchanged tasks writes nothing. "Equal" means the object carries the ``aicp.io/spec-hash`` of the wanted
rendering *and* every field we set still has our value (someone scaling a Deployment by hand is drift too).
Fields we never set (defaults, status, other controllers' annotations) are left alone.

A gateway's Gateway object is shared by up to 16 tasks: each task edits only its own listener, with the
object's ``resourceVersion`` as precondition, and re-reads and retries on a 409, so two reconcilers working on
two tasks of one gateway never drop each other's listener.

One task (``apply``/``remove``) reads what it needs object by object; a sweep (``sweep``) lists each kind once
for the whole installation and works from that index, which is what makes a full resync of 500 tasks cheap.
"""

from __future__ import annotations

from collections import defaultdict

from inference_jobs.choices import TaskStatus
from inference_jobs.orchestrator.kubernetes import render
from inference_jobs.orchestrator.kubernetes.api import KubeAPI, KubeError, TemporaryError
from inference_jobs.orchestrator.kubernetes.render import (
    LABEL_INSTALLATION,
    LABEL_TASK,
    LABEL_TENANT,
    SPEC_HASH,
    ClusterSettings,
)
from inference_jobs.orchestrator.results import Observation, SweepResult
from inference_jobs.orchestrator.spec import TaskSpec, TenantSpec

TASK_KINDS = ("Secret", "Deployment", "Service", "HTTPRoute")
TENANT_KINDS = ("Namespace", "ResourceQuota", "NetworkPolicy")
LISTENER_RETRIES = 8


def is_subset(wanted, live) -> bool:
    """Whether every field of ``wanted`` has the same value in ``live`` (lists: same length, item by item)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(
            key in live and is_subset(value, live[key]) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(live, list) and len(wanted) == len(live) and all(map(is_subset, wanted, live))
    return wanted == live


def matches(wanted: dict, live: dict) -> bool:
    annotations = live.get("metadata", {}).get("annotations") or {}
    if annotations.get(SPEC_HASH) != wanted["metadata"]["annotations"][SPEC_HASH]:
        return False
    meta = wanted["metadata"]
    live_meta = live.get("metadata", {})
    if not is_subset(meta.get("labels", {}), live_meta.get("labels") or {}):
        return False
    return all(is_subset(value, live.get(key)) for key, value in wanted.items() if key not in ("metadata", "status"))


def _key(obj: dict) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


class ClusterView:
    """Live objects by (kind, namespace, name): fetched one by one, or listed once for a sweep."""

    def __init__(self, api: KubeAPI, cluster: ClusterSettings):
        self.api, self.cluster = api, cluster
        self.indexed = False
        self.objects: dict[tuple[str, str, str], dict | None] = {}
        self.pods_by_task: dict[str, list[dict]] = defaultdict(list)
        self.tenants_done: set[str] = set()  # tenants whose namespace objects were converged in this pass
        self.warning_events: dict[str, list[dict]] = {}  # namespace → its Warning events, read once per pass

    def prefetch(self) -> None:
        """List every kind we manage once, for the whole installation."""
        selector = f"{LABEL_INSTALLATION}={self.cluster.installation}"
        for kind in (*TENANT_KINDS, *TASK_KINDS):
            for obj in self.api.list(kind, label_selector=selector):
                obj.setdefault("kind", kind)
                self.objects[_key(obj)] = obj
        for gateway in self.api.list("Gateway", namespace=self.cluster.gateway_namespace):
            gateway.setdefault("kind", "Gateway")
            self.objects[_key(gateway)] = gateway
        for pod in self.api.list("Pod", label_selector=selector):
            self.pods_by_task[(pod["metadata"].get("labels") or {}).get(LABEL_TASK, "")].append(pod)
        self.indexed = True

    def get(self, kind: str, name: str, namespace: str = "") -> dict | None:
        key = (kind, namespace, name)
        if key not in self.objects:
            if self.indexed:
                return None
            self.objects[key] = self.api.get(kind, name, namespace or None)
        return self.objects[key]

    def put(self, obj: dict | None, key: tuple[str, str, str]) -> None:
        self.objects[key] = obj

    def pods(self, spec: TaskSpec, namespace: str) -> list[dict]:
        if self.indexed:
            return self.pods_by_task.get(str(spec.id), [])
        selector = f"{LABEL_INSTALLATION}={self.cluster.installation},{LABEL_TASK}={spec.id}"
        return self.api.list("Pod", namespace=namespace, label_selector=selector)

    def warnings(self, namespace: str) -> list[dict]:
        """The namespace's Warning events (listed once per pass, only for tasks that are not ready)."""
        if namespace not in self.warning_events:
            self.warning_events[namespace] = self.api.list("Event", namespace=namespace, field_selector="type=Warning")
        return self.warning_events[namespace]

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for (k, _, _), obj in self.objects.items() if k == kind and obj is not None]


class KubernetesBackend:
    def __init__(self, api: KubeAPI, cluster: ClusterSettings, resource_names: list[str]):
        self.api, self.cluster, self.resource_names = api, cluster, resource_names

    # ---- writing ----------------------------------------------------------------------------------------

    def ensure(self, wanted: dict, view: ClusterView) -> str:
        """Create, patch or leave one object; returns what it did."""
        kind, namespace, name = key = _key(wanted)
        live = view.get(kind, name, namespace)
        if live is None:
            view.put(self.api.create(wanted), key)
            return "created"
        if matches(wanted, live):
            return "unchanged"
        body = {k: v for k, v in wanted.items() if k not in ("apiVersion", "kind")}
        view.put(self.api.patch(kind, name, namespace or None, body), key)
        return "patched"

    def ensure_tenant(self, tenant: TenantSpec, view: ClusterView) -> None:
        for obj in render.render_tenant(tenant, self.resource_names, self.cluster):
            self.ensure(obj, view)

    def _edit_listeners(self, gateway: str, view: ClusterView, edit) -> str:
        """Apply ``edit(listeners) -> listeners | None`` to a Gateway under its resourceVersion, retrying 409s."""
        namespace = self.cluster.gateway_namespace
        key = ("Gateway", namespace, gateway)
        for _ in range(LISTENER_RETRIES):
            live = view.get("Gateway", gateway, namespace)
            if live is None:
                new = edit([])
                if new is None:
                    return "unchanged"
                try:
                    view.put(self.api.create(render.render_gateway(gateway, new, self.cluster)), key)
                    return "created"
                except TemporaryError as exc:
                    if exc.status != 409:  # someone else created it first: read it and edit it
                        raise
                    view.put(self.api.get("Gateway", gateway, namespace), key)
                    continue
            listeners = list((live.get("spec") or {}).get("listeners") or [])
            new = edit(listeners)
            if new is None:
                return "unchanged"
            body = {"metadata": {"resourceVersion": live["metadata"]["resourceVersion"]}, "spec": {"listeners": new}}
            try:
                view.put(self.api.patch("Gateway", gateway, namespace, body), key)
                return "patched"
            except TemporaryError as exc:
                if exc.status != 409:
                    raise
                view.put(self.api.get("Gateway", gateway, namespace), key)  # another writer won: start again
        raise TemporaryError(f"Gateway {namespace}/{gateway} kept changing; will retry", 409)

    def ensure_listener(self, spec: TaskSpec, view: ClusterView) -> str:
        listener = render.render_listener(spec, self.cluster)

        def edit(listeners: list[dict]) -> list[dict] | None:
            for i, existing in enumerate(listeners):
                if existing.get("name") == listener["name"]:
                    if is_subset(listener, existing):
                        return None
                    return [*listeners[:i], listener, *listeners[i + 1 :]]
            return [*listeners, listener]

        return self._edit_listeners(spec.gateway, view, edit)

    def remove_listeners(self, gateway: str, names: set[str], view: ClusterView) -> str:
        def edit(listeners: list[dict]) -> list[dict] | None:
            kept = [listener for listener in listeners if listener.get("name") not in names]
            return None if len(kept) == len(listeners) else kept

        if view.get("Gateway", gateway, self.cluster.gateway_namespace) is None:
            return "unchanged"
        return self._edit_listeners(gateway, view, edit)

    # ---- one task -----------------------------------------------------------------------------------------

    def apply(self, spec: TaskSpec, view: ClusterView | None = None) -> Observation:
        """Converge one task (and its tenant's namespace objects); return what its pods are doing."""
        view = view or ClusterView(self.api, self.cluster)
        if spec.tenant.slug not in view.tenants_done:
            self.ensure_tenant(spec.tenant, view)
            view.tenants_done.add(spec.tenant.slug)
        for obj in render.render_task(spec, self.cluster):
            self.ensure(obj, view)
        if spec.port is not None:
            self.ensure_listener(spec, view)
        namespace = render.namespace_name(spec.tenant.slug, self.cluster)
        deployment = view.get("Deployment", render.task_object_name(spec.id), namespace)
        pods = view.pods(spec, namespace)
        observation = observe(spec, deployment, pods)
        if observation.status == TaskStatus.DEPLOYING and deployment is not None:
            # Pods stuck before their containers run (a missing volume, a quota the ReplicaSet hits) say why only
            # in events.
            names = [(pod.get("metadata") or {}).get("name", "") for pod in pods]
            name = render.task_object_name(spec.id)
            observation = with_latest_warning(observation, view.warnings(namespace), name, names)
        return observation

    def remove(self, spec: TaskSpec, view: ClusterView | None = None) -> bool:
        """Delete the task's objects and its listener; True once nothing of it is left, False while the cluster
        still finalises one (its DELETE answered the object with a ``deletionTimestamp``): look again later."""
        view = view or ClusterView(self.api, self.cluster)
        namespace = render.namespace_name(spec.tenant.slug, self.cluster)
        gone = True
        for kind, name in render.task_object_names(spec.id):
            if view.indexed and view.get(kind, name, namespace) is None:
                continue  # the sweep's listing says it is not there
            answer = self.api.delete(kind, name, namespace)
            view.put(None, (kind, namespace, name))
            if answer and (answer.get("metadata") or {}).get("deletionTimestamp"):
                gone = False
        if spec.gateway:
            self.remove_listeners(spec.gateway, {render.task_object_name(spec.id)}, view)
        return gone

    # ---- everything ---------------------------------------------------------------------------------------

    def sweep(self, specs: list[TaskSpec], tenant_slugs: set[str]) -> SweepResult:
        """Converge every task, then delete what is labelled ours but belongs to no task (or tenant)."""
        view = ClusterView(self.api, self.cluster)
        view.prefetch()
        result = SweepResult()
        for spec in specs:
            try:
                if not spec.deleting:
                    result.observations[spec.id] = self.apply(spec, view)
                elif self.remove(spec, view):
                    result.removed.add(spec.id)
            except KubeError as exc:
                result.errors[spec.id] = exc
        result.orphans_deleted = self._delete_orphans({spec.id for spec in specs}, tenant_slugs, view)
        return result

    def _delete_orphans(self, task_ids: set[int], tenant_slugs: set[str], view: ClusterView) -> int:
        deleted = 0
        known = {str(task_id) for task_id in task_ids}
        for kind in TASK_KINDS:
            for obj in view.of_kind(kind):
                meta = obj["metadata"]
                if (meta.get("labels") or {}).get(LABEL_TASK) not in known:
                    self.api.delete(kind, meta["name"], meta.get("namespace"))
                    view.put(None, _key({**obj, "kind": kind}))
                    deleted += 1
        for namespace in view.of_kind("Namespace"):
            meta = namespace["metadata"]
            if (meta.get("labels") or {}).get(LABEL_TENANT) not in tenant_slugs:
                self.api.delete("Namespace", meta["name"])
                deleted += 1
        wanted_listeners = {render.task_object_name(task_id) for task_id in task_ids}
        for gateway in view.of_kind("Gateway"):
            listeners = (gateway.get("spec") or {}).get("listeners") or []
            stale = {
                listener["name"]
                for listener in listeners
                if listener.get("name", "").startswith("task-") and listener["name"] not in wanted_listeners
            }
            if stale:
                self.remove_listeners(gateway["metadata"]["name"], stale, view)
                deleted += len(stale)
        return deleted


# ---- reading status -------------------------------------------------------------------------------------

_PULL_ERRORS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
_CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def _pod_problem(pod: dict) -> Observation | None:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        unscheduled = condition.get("type") == "PodScheduled" and condition.get("status") == "False"
        if unscheduled and condition.get("reason") == "Unschedulable":
            return Observation(TaskStatus.FAILED, "Unschedulable", condition.get("message") or "No node fits.")
    for container in status.get("containerStatuses") or []:
        name = container.get("name", "?")
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        last = (container.get("lastState") or {}).get("terminated") or {}
        if last.get("reason") == "OOMKilled" and (reason == "CrashLoopBackOff" or not container.get("ready")):
            message = f"Container {name} ran out of memory (exit code {last.get('exitCode', 137)})."
            return Observation(TaskStatus.FAILED, "OOMKilled", message)
        if reason in _PULL_ERRORS:
            message = waiting.get("message") or f"Cannot pull the image of container {name}."
            return Observation(TaskStatus.FAILED, reason, message)
        if reason == "CrashLoopBackOff":
            detail = f"exit code {last.get('exitCode')}" if last else "restarting"
            message = f"Container {name} keeps crashing ({detail}, {container.get('restartCount', 0)} restarts)."
            if waiting.get("message"):
                message += f" {waiting['message']}"
            return Observation(TaskStatus.FAILED, "CrashLoopBackOff", message)
        if reason in _CONFIG_ERRORS:
            return Observation(TaskStatus.FAILED, reason, waiting.get("message") or reason)
    return None


def _event_time(event: dict) -> str:
    return (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp", "")
    )


def _concerns(event: dict, name: str, pods: list[str]) -> bool:
    """Whether an event is about the task's Deployment (``name``), one of its current ``pods`` or their ReplicaSet;
    with no pods yet, about any ReplicaSet of the Deployment (one that cannot create pods, e.g. over quota)."""
    involved = (event.get("involvedObject") or {}).get("name", "")
    if involved == name or involved in pods:
        return True
    if pods:
        return any(pod.startswith(f"{involved}-") for pod in pods)
    return (event.get("involvedObject") or {}).get("kind") == "ReplicaSet" and involved.startswith(f"{name}-")


def with_latest_warning(observation: Observation, events: list[dict], name: str, pods: list[str]) -> Observation:
    """Add the newest Warning event about the task's Deployment, ReplicaSet or pods to the status message."""
    ours = [event for event in events if event.get("type") == "Warning" and _concerns(event, name, pods)]
    if not ours:
        return observation
    latest = max(ours, key=_event_time)
    message = f"{observation.message} {latest.get('reason', 'Warning')}: {latest.get('message', '')}".strip()
    return Observation(observation.status, observation.reason, message, observation.ready)


def observe(spec: TaskSpec, deployment: dict | None, pods: list[dict]) -> Observation:
    """The task's status from its Deployment's status and conditions and its pods' states."""
    status = (deployment or {}).get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    if spec.instances == 0:
        if ready:
            return Observation(TaskStatus.STOPPED, "Stopping", f"{ready} instance(s) still shutting down.", ready)
        return Observation(TaskStatus.STOPPED, "Stopped", "", 0)
    if deployment is None:
        return Observation(TaskStatus.DEPLOYING, "Deploying", "Creating the Deployment.")
    for pod in pods:
        problem = _pod_problem(pod)
        if problem is not None:
            return Observation(problem.status, problem.reason, problem.message, ready)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return Observation(TaskStatus.FAILED, "ProgressDeadlineExceeded", condition.get("message", ""), ready)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    rolled_out = (
        status.get("observedGeneration", 0) >= generation and status.get("updatedReplicas", 0) >= spec.instances
    )
    if ready >= spec.instances and rolled_out:
        return Observation(TaskStatus.RUNNING, "Running", f"{ready} of {spec.instances} instance(s) ready.", ready)
    return Observation(TaskStatus.DEPLOYING, "Deploying", f"{ready} of {spec.instances} instance(s) ready.", ready)
