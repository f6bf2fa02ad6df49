"""A small Kubernetes API server, served over real HTTP, for tests and benchmarks.

The project's Kubernetes code talks to clusters through the official ``kubernetes`` client. Tests must not monkeypatch
that client, so this module gives it something real to talk to: an HTTP/1.1 server on ``127.0.0.1`` that answers the
paths, verbs, status codes and ``Status`` bodies a kube-apiserver answers, for the handful of resources the project
uses::

    with KubeEmulator() as kube:
        apps = kubernetes.client.AppsV1Api(kube.api_client())
        apps.create_namespaced_deployment("team-a", body)
        kube.simulate_pods("team-a", "llama", "crash_loop")

What is emulated (see ``RESOURCES`` for the kinds):

* create / get / list / update (PUT) / patch / delete / deletecollection, cluster-wide lists, the ``/status``
  subresource, and enough discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/{group}/{version}``, ``/version``) for
  the client's ``DynamicClient``;
* server-managed metadata: ``uid``, ``creationTimestamp``, ``generation`` (bumped when anything outside ``metadata``
  and ``status`` changes), and ``resourceVersion`` from one global counter (optimistic concurrency: a stale
  ``resourceVersion`` in a PUT or patch answers 409 Conflict). A write that changes nothing stores nothing and keeps
  the ``resourceVersion``, as etcd-backed storage does;
* label selectors (equality, set-based, existence) and the field selectors the API server indexes;
* the four patch types, with one simplification: a strategic merge patch merges lists of objects by their ``name`` key
  (containers, env, volumes, named ports) and replaces every other list, where the real server uses per-field merge
  keys from the OpenAPI schema (``containerPort`` for container ports, ``port`` for service ports). ``$patch: delete``
  and ``$patch: replace`` are honoured; other ``$`` directives are ignored. As on a real server, custom resources
  (the Gateway API kinds) refuse strategic merge patches with 415;
* server-side apply as "create if missing, else JSON merge patch" (no managed fields, no field ownership conflicts);
* validation of names (DNS-1123 subdomain; DNS-1123 label for namespaces, DNS-1035 label for services), label keys and
  values, and annotation keys, with 422 ``Invalid`` answers shaped like the real ones;
* a little defaulting: Deployment ``spec.replicas`` (1), Secret ``type`` (Opaque) and ``stringData`` folded into
  ``data``, and the ``kubernetes.io/metadata.name`` label on namespaces;
* garbage collection without delay: deleting a namespace deletes everything in it, and deleting an object deletes the
  objects whose ``ownerReferences`` name it (unless ``propagationPolicy=Orphan``);
* ``simulate_pods``: what the Deployment controller, scheduler and kubelet would report for a Deployment's pods;
  ``complete_jobs``: what the Job controller reports once a Job's pod succeeded;
* ``/openapi/v3`` documents that name every kind and advertise server-side field validation, which is what Helm
  needs to install a chart (its hooks included) against the emulator;
* fault injection (status codes, delays) and a request log, for testing retries, timeouts and write counts;
* list pagination (``limit`` / ``continue``). A delete answers a ``Status`` for built-in kinds and the deleted object
  for custom resources (the v37 client types both as a plain dict).

What is not: watches, authentication and authorisation, admission webhooks, finalizers and graceful deletion (every
delete is immediate), ``dryRun`` (refused with 400 rather than silently persisted), OpenAPI schema validation, the
defaulting of all other fields, ReplicaSets, and any controller other than ``simulate_pods``. The store starts empty:
not even ``default`` exists until a test creates it. Watches answer 405, so clients fall back to listing again.
Bodies must be JSON: clients that send protobuf (Helm's release storage in Secrets) need a JSON-only setup, e.g.
``HELM_DRIVER=memory``.

Everything runs under one lock (operations take microseconds); responses are serialised inside it and written outside
it. Answers are always JSON.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

import kubernetes.client

try:  # server-side apply bodies are YAML on the wire in theory; the client sends JSON, which is tried first
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with the kubernetes client
    yaml = None


# --------------------------------------------------------------------------------------------------------------------
# Resource table


@dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives, what it is called and how it behaves."""

    plural: str
    singular: str
    group: str  # "" for the core group
    version: str
    kind: str
    namespaced: bool
    status_subresource: bool
    name_rule: str = "subdomain"  # "subdomain", "label" (DNS-1123) or "label1035" (DNS-1035)
    short_names: tuple[str, ...] = ()
    custom: bool = False  # served from a CustomResourceDefinition in a real cluster

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified_plural(self) -> str:
        """How API-server messages name the resource: ``deployments.apps``, ``pods``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """How validation messages name the kind: ``Deployment.apps``, ``Pod``."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


GATEWAY_GROUP = "gateway.networking.k8s.io"

RESOURCES: dict[str, ResourceType] = {
    rt.plural: rt
    for rt in (
        ResourceType("namespaces", "namespace", "", "v1", "Namespace", False, True, "label", ("ns",)),
        ResourceType("nodes", "node", "", "v1", "Node", False, True, short_names=("no",)),
        ResourceType("pods", "pod", "", "v1", "Pod", True, True, short_names=("po",)),
        ResourceType("services", "service", "", "v1", "Service", True, False, "label1035", ("svc",)),
        ResourceType("secrets", "secret", "", "v1", "Secret", True, False),
        ResourceType("configmaps", "configmap", "", "v1", "ConfigMap", True, False, short_names=("cm",)),
        ResourceType("resourcequotas", "resourcequota", "", "v1", "ResourceQuota", True, False, short_names=("quota",)),
        ResourceType("events", "event", "", "v1", "Event", True, False, short_names=("ev",)),
        ResourceType("deployments", "deployment", "apps", "v1", "Deployment", True, True, short_names=("deploy",)),
        ResourceType(
            "networkpolicies",
            "networkpolicy",
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            True,
            False,
            short_names=("netpol",),
        ),
        ResourceType(
            "gateways", "gateway", GATEWAY_GROUP, "v1", "Gateway", True, True, short_names=("gtw",), custom=True
        ),
        ResourceType("httproutes", "httproute", GATEWAY_GROUP, "v1", "HTTPRoute", True, True, custom=True),
        # What the Helm chart (helm/aicp) installs besides the kinds above.
        ResourceType("serviceaccounts", "serviceaccount", "", "v1", "ServiceAccount", True, False, short_names=("sa",)),
        ResourceType(
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "",
            "v1",
            "PersistentVolumeClaim",
            True,
            True,
            short_names=("pvc",),
        ),
        ResourceType("statefulsets", "statefulset", "apps", "v1", "StatefulSet", True, True, short_names=("sts",)),
        ResourceType("jobs", "job", "batch", "v1", "Job", True, True),
        ResourceType("ingresses", "ingress", "networking.k8s.io", "v1", "Ingress", True, True, short_names=("ing",)),
        ResourceType(
            "poddisruptionbudgets",
            "poddisruptionbudget",
            "policy",
            "v1",
            "PodDisruptionBudget",
            True,
            True,
            short_names=("pdb",),
        ),
        ResourceType("clusterroles", "clusterrole", "rbac.authorization.k8s.io", "v1", "ClusterRole", False, False),
        ResourceType(
            "clusterrolebindings",
            "clusterrolebinding",
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            False,
            False,
        ),
    )
}
_BY_PATH = {(rt.group, rt.version, rt.plural): rt for rt in RESOURCES.values()}
_BY_KIND = {rt.kind: rt for rt in RESOURCES.values()}
_GROUP_VERSIONS = sorted({(rt.group, rt.version) for rt in RESOURCES.values()})

VERBS = ("get", "list", "create", "update", "patch", "delete", "deletecollection")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})

# Field selectors the real API server accepts, beyond metadata.name and metadata.namespace (which every kind has).
_FIELD_SELECTORS = {
    "pods": {
        "status.phase",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "events": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "secrets": {"type"},
    "namespaces": {"status.phase"},
    "nodes": {"spec.unschedulable"},
}
_FIELD_ALIASES = {"source": "source.component"}

STATUS_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

_CONFLICT_TAIL = "the object has been modified; please apply your changes to the latest version and try again"
_ENVELOPE = frozenset({"apiVersion", "kind", "metadata", "status"})
# Metadata the server owns (kept from the stored object on every write) and metadata the client owns.
_SYSTEM_META = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp")
_USER_META = ("labels", "annotations", "ownerReferences", "finalizers")
# Kubernetes' alphabet for generated name suffixes and pod-template hashes (no vowels, no look-alike digits).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
POD_STATES = ("ready", "image_pull", "crash_loop", "oom", "unschedulable", "progressing")

_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _dumps(doc) -> bytes:
    return _ENCODER.encode(doc).encode()


def _clone(doc):
    """A deep copy of a JSON document (faster than copy.deepcopy for plain dicts and lists)."""
    return json.loads(_ENCODER.encode(doc))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# --------------------------------------------------------------------------------------------------------------------
# Errors: every failure is answered as a Kubernetes Status object


class ApiError(Exception):
    """A failed request, answered as a ``Status`` object with ``code`` as the HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or STATUS_REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers

    def status(self) -> dict:
        doc = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            doc["details"] = self.details
        doc["code"] = self.code
        return doc


def _details(rt: ResourceType, name: str | None, kind: str | None = None) -> dict:
    details = {"name": name or ""}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = kind or rt.plural
    return details


def _not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(404, f'{rt.qualified_plural} "{name}" not found', details=_details(rt, name))


def _conflict(rt: ResourceType, name: str, why: str = _CONFLICT_TAIL) -> ApiError:
    message = f'Operation cannot be fulfilled on {rt.qualified_plural} "{name}": {why}'
    return ApiError(409, message, details=_details(rt, name))


def _invalid(rt: ResourceType, name: str | None, field: str, value, why: str) -> ApiError:
    cause = f"Invalid value: {json.dumps(value)}: {why}"
    details = _details(rt, name, rt.kind)
    details["causes"] = [{"reason": "FieldValueInvalid", "message": cause, "field": field}]
    return ApiError(422, f'{rt.qualified_kind} "{name or ""}" is invalid: {field}: {cause}', details=details)


def _bad_request(message: str) -> ApiError:
    return ApiError(400, message)


# --------------------------------------------------------------------------------------------------------------------
# Names, labels and selectors

_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL1035_RE = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_SET_REQUIREMENT_RE = re.compile(r"\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)\s*")


def name_error(rule: str, name: str) -> str | None:
    """Why ``name`` is not a valid object name under ``rule`` (see ``ResourceType.name_rule``), or None."""
    if rule == "subdomain":
        if len(name) > 253:
            return "must be no more than 253 characters"
        if not _SUBDOMAIN_RE.fullmatch(name):
            return (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character"
            )
        return None
    if len(name) > 63:
        return "must be no more than 63 characters"
    if rule == "label1035" and not _LABEL1035_RE.fullmatch(name):
        return (
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character"
        )
    if rule == "label" and not _LABEL_RE.fullmatch(name):
        return (
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
            "and end with an alphanumeric character"
        )
    return None


def qualified_name_error(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key (``[prefix/]name``), or None."""
    prefix, slash, name = key.partition("/")
    if not slash:
        prefix, name = "", key
    elif not prefix or len(prefix) > 253 or not _SUBDOMAIN_RE.fullmatch(prefix):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME_RE.fullmatch(name):
        return (
            "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character"
        )
    return None


def label_value_error(value) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > 63 or not _LABEL_VALUE_RE.fullmatch(value):
        return (
            "a valid label must be an empty string or consist of at most 63 alphanumeric characters, '-', '_' or "
            "'.', and must start and end with an alphanumeric character"
        )
    return None


@dataclass(frozen=True)
class Requirement:
    """One term of a label selector."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: dict) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        value = labels.get(self.key)
        if self.op == "=":
            return present and value == self.values[0]
        if self.op == "!=":
            return not present or value != self.values[0]
        if self.op == "in":
            return present and value in self.values
        return not present or value not in self.values  # notin


def _split_outside_parentheses(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def parse_label_selector(text: str | None) -> list[Requirement]:
    """Parse a label selector (``a=b,c!=d,e in (f,g),h notin (i),j,!k``); raise ValueError when malformed."""
    requirements: list[Requirement] = []
    for raw in _split_outside_parentheses(text or ""):
        term = raw.strip()
        if not term:
            continue
        match = _SET_REQUIREMENT_RE.fullmatch(term)
        if match:
            key, op, listed = match.groups()
            values = tuple(v.strip() for v in listed.split(","))
            if not listed.strip():
                raise ValueError(f"{term!r}: for 'in' and 'notin' operators, values set can't be empty")
        elif term.startswith("!"):
            key, op, values = term[1:].strip(), "!exists", ()
        elif "!=" in term:
            key, value = term.split("!=", 1)
            op, values = "!=", (value.strip(),)
        elif "==" in term:
            key, value = term.split("==", 1)
            op, values = "=", (value.strip(),)
        elif "=" in term:
            key, value = term.split("=", 1)
            op, values = "=", (value.strip(),)
        else:
            key, op, values = term, "exists", ()
        key = key.strip()
        if not key or qualified_name_error(key):
            raise ValueError(f"invalid label key {key!r} in selector {text!r}")
        for value in values:
            if label_value_error(value):
                raise ValueError(f"invalid label value {value!r} in selector {text!r}")
        requirements.append(Requirement(key, op, values))
    return requirements


def labels_match(requirements: list[Requirement], obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in requirements)


def parse_field_selector(text: str | None, plural: str) -> list[tuple[tuple[str, ...], bool, str]]:
    """Parse a field selector into ``(path, equal, value)`` terms; raise ValueError for unsupported fields."""
    allowed = {"metadata.name", "metadata.namespace"} | _FIELD_SELECTORS.get(plural, set())
    terms = []
    for raw in (text or "").split(","):
        term = raw.strip()
        if not term:
            continue
        if "!=" in term:
            field, value = term.split("!=", 1)
            equal = False
        elif "==" in term:
            field, value = term.split("==", 1)
            equal = True
        elif "=" in term:
            field, value = term.split("=", 1)
            equal = True
        else:
            raise ValueError(f"invalid selector: {term!r}; can't understand {term!r}")
        field = field.strip()
        if field not in allowed:
            raise ValueError(f'field label not supported: "{field}"')
        terms.append((tuple(_FIELD_ALIASES.get(field, field).split(".")), equal, value.strip()))
    return terms


def _field_value(obj: dict, path: tuple[str, ...]) -> str:
    node = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def fields_match(terms, obj: dict) -> bool:
    return all((_field_value(obj, path) == value) == equal for path, equal, value in terms)


# --------------------------------------------------------------------------------------------------------------------
# Patches


class PatchError(Exception):
    """A JSON patch that cannot be applied (answered 422 Invalid)."""


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch: null deletes a key, objects merge recursively, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _is_named_list(value, *, allow_empty: bool = False) -> bool:
    return (
        isinstance(value, list)
        and (allow_empty or bool(value))
        and all(isinstance(item, dict) and "name" in item for item in value)
    )


def strategic_merge_patch(target, patch):
    """A strategic merge patch, simplified: a merge patch that merges lists of named objects by ``name``.

    Lists whose items are all objects with a ``name`` (on both sides) are merged item by item, new names appended, and
    an item ``{"name": ..., "$patch": "delete"}`` removes that name; every other list is replaced. ``$patch: replace``
    on an object replaces it and ``$patch: delete`` removes it; other ``$`` directives are ignored.
    """
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge_patch(result.get(key), value)
        elif _is_named_list(value) and _is_named_list(result.get(key, []), allow_empty=True):
            result[key] = _merge_named_lists(result.get(key) or [], value)
        else:
            result[key] = value
    return result


def _merge_named_lists(current: list, patch: list) -> list:
    merged = list(current)
    position = {item["name"]: i for i, item in enumerate(merged)}
    deleted = set()
    for item in patch:
        name = item["name"]
        if item.get("$patch") == "delete":
            deleted.add(name)
        elif name in position:
            merged[position[name]] = strategic_merge_patch(merged[position[name]], item)
        else:
            position[name] = len(merged)
            merged.append(strategic_merge_patch({}, item))
    return [item for item in merged if item["name"] not in deleted]


def _pointer(path) -> list[str]:
    if not isinstance(path, str):
        raise PatchError(f"invalid JSON pointer {path!r}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}: must start with '/'")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _list_index(token: str, size: int, *, allow_end: bool) -> int:
    if allow_end and token == "-":
        return size
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise PatchError(f"invalid array index {token!r}")
    index = int(token)
    if index > size or (index == size and not allow_end):
        raise PatchError(f"array index {index} out of bounds (size {size})")
    return index


def _resolve(doc, tokens: list[str]):
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"path /{'/'.join(tokens)} does not exist (missing key {token!r})")
            node = node[token]
        elif isinstance(node, list):
            node = node[_list_index(token, len(node), allow_end=False)]
        else:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
    return node


def _add(doc, tokens: list[str], value):
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_list_index(tokens[-1], len(parent), allow_end=True), value)
    else:
        raise PatchError(f"cannot add to a scalar at /{'/'.join(tokens[:-1])}")
    return doc


def _remove(doc, tokens: list[str]):
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    if isinstance(parent, dict):
        if tokens[-1] not in parent:
            raise PatchError(f"path /{'/'.join(tokens)} does not exist")
        return parent.pop(tokens[-1])
    if isinstance(parent, list):
        return parent.pop(_list_index(tokens[-1], len(parent), allow_end=False))
    raise PatchError(f"path /{'/'.join(tokens)} does not exist")


def _json_equal(a, b) -> bool:
    """JSON equality (unlike Python's, ``true`` is not ``1``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def json_patch(doc, operations: list):
    """RFC 6902 JSON patch, applied in place to ``doc`` (pass a copy); raise PatchError on any failure."""
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise PatchError(f"malformed operation {operation!r}")
        op, tokens = operation["op"], _pointer(operation["path"])
        if op in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"{op} operation at {operation['path']} has no value")
        if op == "add":
            doc = _add(doc, tokens, operation["value"])
        elif op == "remove":
            _remove(doc, tokens)
        elif op == "replace":
            if not tokens:
                doc = operation["value"]
                continue
            _resolve(doc, tokens)  # must exist
            parent = _resolve(doc, tokens[:-1])
            if isinstance(parent, list):
                parent[_list_index(tokens[-1], len(parent), allow_end=False)] = operation["value"]
            else:
                parent[tokens[-1]] = operation["value"]
        elif op in ("move", "copy"):
            source = _pointer(operation.get("from"))
            if op == "move":
                if tokens[: len(source)] == source and len(tokens) > len(source):
                    raise PatchError(f"cannot move {operation['from']} into its own child {operation['path']}")
                value = _remove(doc, source)
            else:
                value = _clone(_resolve(doc, source))
            doc = _add(doc, tokens, value)
        elif op == "test":
            if not _json_equal(_resolve(doc, tokens), operation["value"]):
                raise PatchError(f"testing value at {operation['path']} failed")
        else:
            raise PatchError(f"unknown operation {op!r}")
    return doc


# --------------------------------------------------------------------------------------------------------------------
# Requests, faults and the log


@dataclass
class RequestRecord:
    """One answered request. ``verb`` is the audit verb; ``name`` for a create is the body's ``metadata.name``."""

    verb: str
    method: str
    path: str
    plural: str | None
    namespace: str | None
    name: str | None
    status: int
    subresource: str | None = None


@dataclass
class Fault:
    """An injected failure; every field that is not None must match the request."""

    verb: str | None
    plural: str | None  # "deployments" matches the resource and its subresources; "deployments/status" only those
    name: str | None
    namespace: str | None
    status: int
    times: int
    delay: float
    reason: str | None
    message: str | None

    def matches(self, route: _Route) -> bool:
        if self.verb is not None and self.verb != route.verb:
            return False
        if self.plural is not None:
            plural = route.rt.plural if route.rt else None
            if "/" in self.plural:
                if self.plural != f"{plural}/{route.subresource}":
                    return False
            elif self.plural != plural:
                return False
        if self.name is not None and self.name != route.name:
            return False
        return self.namespace is None or self.namespace == route.namespace


@dataclass
class _Route:
    verb: str
    rt: ResourceType | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    document: dict | None = None  # a discovery answer
    text: str | None = None  # a plain-text answer (health checks)


def _fault_error(fault: Fault, route: _Route) -> ApiError:
    code, rt, name = fault.status, route.rt, route.name or ""
    what = f'{rt.qualified_plural} "{name}"' if rt else "the server"
    defaults = {
        409: f"Operation cannot be fulfilled on {what}: {_CONFLICT_TAIL}",
        403: f'{what} is forbidden: User "system:serviceaccount:aicp:controller" cannot {route.verb} resource '
        f'"{rt.plural if rt else ""}" in API group "{rt.group if rt else ""}" '
        f'in the namespace "{route.namespace or ""}"',
        422: f'{rt.qualified_kind if rt else "object"} "{name}" is invalid: injected validation failure',
        429: "Too many requests, please try again later.",
        500: "Internal error occurred: injected fault",
        503: "the server is currently unable to handle the request",
        504: "Timeout: request did not complete within the allotted timeout",
    }
    details = _details(rt, name) if rt else None
    headers: tuple[tuple[str, str], ...] = ()
    if code == 429:
        headers = (("Retry-After", "1"),)
        details = {**(details or {}), "retryAfterSeconds": 1}
    message = fault.message or defaults.get(code, f"injected fault ({code})")
    return ApiError(code, message, reason=fault.reason, details=details, headers=headers)


# --------------------------------------------------------------------------------------------------------------------
# The emulator


class KubeEmulator:
    """The API server: an in-memory store behind an HTTP server on ``127.0.0.1``. See the module docstring."""

    def __init__(self):
        self._lock = threading.Lock()
        self._store: dict[str, dict[tuple[str, str], dict]] = {plural: {} for plural in RESOURCES}
        self._owned: dict[str, set[tuple[str, str, str]]] = {}  # owner uid -> (plural, namespace, name) dependents
        self._rv = 0
        self._faults: list[Fault] = []
        self._epoch = 0  # bumped by reset(): a request delayed across a reset is abandoned, not applied
        self._pod_seq = 0
        self.requests: list[RequestRecord] = []
        self.server_errors: list[str] = []  # tracebacks of emulator bugs (answered 500); tests may assert it is empty
        self.url: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        """Listen on a free port of 127.0.0.1 and serve from a background thread; sets ``self.url``."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.emulator = self
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kube-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def configuration(self) -> kubernetes.client.Configuration:
        """A client configuration pointing at this server, without authentication."""
        if self.url is None:
            raise RuntimeError("start() the emulator first")
        return kubernetes.client.Configuration(host=self.url)

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.client.ApiClient(self.configuration())

    def reset(self) -> None:
        """Forget every object, fault and logged request (resourceVersions keep increasing)."""
        with self._lock:
            for objects in self._store.values():
                objects.clear()
            self._owned.clear()
            self._faults.clear()
            self.requests.clear()
            self.server_errors.clear()
            self._epoch += 1

    # ---- inspection and seeding (no HTTP, thread-safe) ------------------------------------------------------------

    def objects(self, plural: str, namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        """Copies of the stored objects of ``plural`` (optionally in one namespace, matching a label selector)."""
        rt = _resource(plural)
        requirements = parse_label_selector(label_selector)
        with self._lock:
            items = self._select(rt, namespace if rt.namespaced else None, requirements, [])
            return _clone(items)

    def get(self, plural: str, namespace: str | None, name: str) -> dict | None:
        """A copy of one stored object, or None."""
        rt = _resource(plural)
        with self._lock:
            obj = self._store[plural].get(_key(rt, namespace, name))
            return None if obj is None else _clone(obj)

    def seed(self, obj: dict) -> dict:
        """Store ``obj`` as if it had been created (or replace it), status included; return the stored copy.

        The kind comes from ``obj["kind"]``; server metadata is filled in. Unlike a create over HTTP, the namespace does
        not have to exist and a given ``status`` is kept (use it for Nodes, Pods and the like).
        """
        if not isinstance(obj, dict) or obj.get("kind") not in _BY_KIND:
            raise ValueError(f"seed() needs a dict with one of the kinds {sorted(_BY_KIND)}")
        rt = _BY_KIND[obj["kind"]]
        body = _clone(obj)
        meta = body.get("metadata") or {}
        namespace = meta.get("namespace") if rt.namespaced else None
        if rt.namespaced and not namespace:
            raise ValueError(f"seed() of a {rt.kind} needs metadata.namespace")
        with self._lock:
            stored = self._store[rt.plural].get(_key(rt, namespace, meta.get("name") or ""))
            if stored is None:
                created = self._create(rt, namespace, body, keep_status=True, check_namespace=False)
            else:
                created = self._commit(rt, stored, body, take_status=True)
            return _clone(created)

    def set_status(self, plural: str, namespace: str | None, name: str, status: dict) -> None:
        """Replace an object's status, as its controller would (bumps resourceVersion, never generation)."""
        rt = _resource(plural)
        with self._lock:
            stored = self._store[plural].get(_key(rt, namespace, name))
            if stored is None:
                raise KeyError(f"{plural} {namespace}/{name} does not exist")
            self._commit(rt, stored, {"status": _clone(status)}, status_only=True)

    def complete_jobs(self) -> list[tuple[str, str]]:
        """Report every Job that has no outcome yet as succeeded, as the Job controller would once its pod exited 0;
        returns their (namespace, name)."""
        with self._lock:
            pending = [
                key
                for key, job in self._store["jobs"].items()
                if not any(c.get("status") == "True" for c in (job.get("status") or {}).get("conditions") or [])
            ]
        now = _now()
        for namespace, name in pending:
            conditions = [
                {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
                for kind in ("SuccessCriteriaMet", "Complete")
            ]
            status = {"startTime": now, "completionTime": now, "succeeded": 1, "conditions": conditions}
            self.set_status("jobs", namespace, name, status)
        return pending

    # ---- fault injection and the request log ----------------------------------------------------------------------

    def inject(
        self,
        *,
        verb: str | None = None,
        plural: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        status: int = 500,
        times: int = 1,
        delay: float = 0.0,
        reason: str | None = None,
        message: str | None = None,
    ) -> None:
        """Make matching requests fail with ``status`` (a Status body), ``times`` times (-1: until cleared).

        Each firing first sleeps ``delay`` seconds; ``status=0`` only delays and then answers normally (to provoke
        client timeouts). A 429 carries ``Retry-After: 1``. Rules are tried in the order they were added.
        """
        if verb is not None and verb not in VERBS:
            raise ValueError(f"verb must be one of {VERBS}")
        if plural is not None and plural.split("/")[0] not in RESOURCES:
            raise ValueError(f"unknown resource {plural!r}")
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        if status and not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error code (or 0 for a delay only)")
        with self._lock:
            self._faults.append(Fault(verb, plural, name, namespace, status, times, delay, reason, message))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def writes(self) -> int:
        """How many create/update/patch/delete/deletecollection requests have been answered (any status)."""
        with self._lock:
            return sum(1 for record in self.requests if record.verb in WRITE_VERBS)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()

    # ---- the Deployment controller and kubelet, on demand ---------------------------------------------------------

    def simulate_pods(
        self, namespace: str, deployment: str, state: str, count: int | None = None, message: str = ""
    ) -> None:
        """Replace a Deployment's pods with ``count`` (default ``spec.replicas``) pods in ``state``.

        Does what the Deployment controller, the scheduler and the kubelet would have reported: pods named
        ``{deployment}-{hash}-{i}``, labelled with the template's labels, the selector's ``matchLabels`` and
        ``pod-template-hash``, owned by the Deployment, with container statuses for each template container; a Warning
        Event per failing pod (reason BackOff or FailedScheduling); and a consistent Deployment status. As the real
        server does, zero counts are left out of the Deployment status (``readyReplicas`` is absent, not 0).

        States: ``ready``, ``image_pull`` (ImagePullBackOff), ``crash_loop`` (CrashLoopBackOff, last exit Error 1),
        ``oom`` (CrashLoopBackOff, last exit OOMKilled 137), ``unschedulable`` (PodScheduled False), ``progressing``
        (ContainerCreating). ``message`` replaces the default waiting or scheduling message. ``count=0`` removes the
        pods. Progressing stays True (the emulator has no clock to exceed a progress deadline).
        """
        if state not in POD_STATES:
            raise ValueError(f"state must be one of {POD_STATES}")
        with self._lock:
            dep = self._store["deployments"].get((namespace, deployment))
            if dep is None:
                raise KeyError(f"deployment {namespace}/{deployment} does not exist")
            spec = dep.get("spec") or {}
            count = spec.get("replicas", 1) if count is None else count
            template = spec.get("template") or {}
            pod_hash = _template_hash(template)
            self._remove_deployment_pods(dep)
            nodes = sorted(name for _, name in self._store["nodes"]) or ["node-0"]
            now = _now()
            for i in range(count):
                self._create_simulated_pod(dep, template, pod_hash, i, nodes, state, message, now)
            self._set_deployment_status(dep, pod_hash, count, state, now)

    # ---- HTTP entry point -----------------------------------------------------------------------------------------

    def handle(self, method: str, raw_path: str, content_type: str | None, body: bytes):
        """Answer one request: ``(status, payload bytes, content type, extra headers)``."""
        path, _, query_string = raw_path.partition("?")
        query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()} if query_string else {}
        route: _Route | None = None
        headers: tuple[tuple[str, str], ...] = ()
        ctype = "application/json"
        try:
            route = _route(method, path, query)
            if route.text is not None:
                code, payload, ctype = 200, route.text.encode(), "text/plain; charset=utf-8"
            else:
                parsed = None
                if body and route.verb in ("create", "update", "delete"):
                    parsed = _decode(body, content_type)
                    if route.verb == "create" and isinstance(parsed, dict):
                        route.name = (parsed.get("metadata") or {}).get("name") or None
                epoch = self._epoch
                fault = self._take_fault(route) if self._faults else None
                if fault is not None:
                    if fault.delay > 0:
                        time.sleep(fault.delay)
                    if epoch != self._epoch:
                        return (
                            503,
                            _dumps(ApiError(503, "the emulator was reset during an injected delay").status()),
                            ctype,
                            (),
                        )
                    if fault.status:
                        raise _fault_error(fault, route)
                with self._lock:
                    code, doc = self._operate(route, query, content_type, body, parsed)
                    payload = _dumps(doc)
        except ApiError as error:
            code, payload, headers = error.code, _dumps(error.status()), error.headers
        except Exception as error:
            with self._lock:
                self.server_errors.append(traceback.format_exc())
            code, payload = 500, _dumps(ApiError(500, f"emulator error: {error!r}").status())
        self._log(route, method, path, code)
        return code, payload, ctype, headers

    def _log(self, route: _Route | None, method: str, path: str, code: int) -> None:
        if route is None:
            verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
            record = RequestRecord(verb.get(method, method.lower()), method, path, None, None, None, code)
        else:
            plural = route.rt.plural if route.rt else None
            record = RequestRecord(
                route.verb, method, path, plural, route.namespace, route.name, code, route.subresource
            )
        with self._lock:
            self.requests.append(record)

    def _take_fault(self, route: _Route) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(route):
                    if fault.times > 0:
                        fault.times -= 1
                        if fault.times == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _operate(self, route: _Route, query: dict, content_type: str | None, raw: bytes, parsed):
        """Carry out a routed request (lock held): ``(status, document)``."""
        if route.document is not None:
            return 200, route.document
        rt, namespace, name, verb = route.rt, route.namespace, route.name, route.verb
        if verb == "get":
            return 200, self._require(rt, namespace, name)
        if verb == "list":
            return 200, self._list(rt, namespace, query)
        if query.get("dryRun"):
            raise _bad_request("dryRun is not emulated")
        if verb == "create":
            return 201, self._create(rt, namespace, parsed)
        if verb == "update":
            return 200, self._update(rt, namespace, name, parsed, route.subresource)
        if verb == "patch":
            return self._patch(rt, namespace, name, content_type, raw, route.subresource)
        if verb == "delete":
            return 200, self._delete_request(rt, namespace, name, parsed, query)
        return 200, self._delete_collection(rt, namespace, query)

    # ---- storage (lock held) --------------------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _put(self, rt: ResourceType, obj: dict) -> None:
        meta = obj["metadata"]
        key = _key(rt, meta.get("namespace"), meta["name"])
        old = self._store[rt.plural].get(key)
        if old is not None:
            self._unindex(rt, old)
        self._store[rt.plural][key] = obj
        for ref in meta.get("ownerReferences") or ():
            if isinstance(ref, dict) and ref.get("uid"):
                self._owned.setdefault(ref["uid"], set()).add((rt.plural, key[0], key[1]))

    def _unindex(self, rt: ResourceType, obj: dict) -> None:
        meta = obj["metadata"]
        entry = (rt.plural, meta.get("namespace") or "", meta["name"])
        for ref in meta.get("ownerReferences") or ():
            dependents = self._owned.get(ref.get("uid")) if isinstance(ref, dict) else None
            if dependents is not None:
                dependents.discard(entry)
                if not dependents:
                    del self._owned[ref["uid"]]

    def _require(self, rt: ResourceType, namespace: str | None, name: str) -> dict:
        obj = self._store[rt.plural].get(_key(rt, namespace, name))
        if obj is None:
            raise _not_found(rt, name)
        return obj

    def _select(self, rt: ResourceType, namespace: str | None, requirements, field_terms) -> list[dict]:
        objects = self._store[rt.plural]
        keys = sorted(objects) if namespace is None else sorted(k for k in objects if k[0] == namespace)
        items = []
        for key in keys:
            obj = objects[key]
            if requirements and not labels_match(requirements, obj):
                continue
            if field_terms and not fields_match(field_terms, obj):
                continue
            items.append(obj)
        return items

    def _list(self, rt: ResourceType, namespace: str | None, query: dict) -> dict:
        try:
            requirements = parse_label_selector(query.get("labelSelector"))
            field_terms = parse_field_selector(query.get("fieldSelector"), rt.plural)
        except ValueError as error:
            raise _bad_request(str(error)) from None
        items = self._select(rt, namespace, requirements, field_terms)
        metadata: dict = {"resourceVersion": str(self._rv)}
        if query.get("continue"):
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(query["continue"])))
            except (ValueError, TypeError):
                raise ApiError(410, "the provided continue parameter is not valid", reason="Expired") from None
            items = [obj for obj in items if _object_key(obj) > after]
        limit = query.get("limit") or "0"
        if not limit.isdigit():
            raise _bad_request(f"invalid limit {limit!r}")
        limit = int(limit)
        if 0 < limit < len(items):
            last = _object_key(items[limit - 1])
            metadata["continue"] = base64.urlsafe_b64encode(_dumps(list(last))).decode()
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {"apiVersion": rt.api_version, "kind": f"{rt.kind}List", "metadata": metadata, "items": items}

    def _create(
        self, rt: ResourceType, namespace: str | None, body, *, keep_status: bool = False, check_namespace: bool = True
    ) -> dict:
        if not isinstance(body, dict):
            raise _bad_request(f"the body of a create must be a {rt.kind} object")
        meta_in = body.get("metadata") or {}
        if not isinstance(meta_in, dict):
            raise _bad_request("metadata must be an object")
        name = meta_in.get("name") or ""
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise _invalid(rt, name, "kind", kind, f"must be {rt.kind} for {rt.qualified_plural}")
        if rt.namespaced:
            body_namespace = meta_in.get("namespace")
            if body_namespace and body_namespace != namespace:
                raise _bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            if check_namespace and ("", namespace) not in self._store["namespaces"]:
                raise _not_found(RESOURCES["namespaces"], namespace)
        else:
            namespace = None
        if not name:
            prefix = meta_in.get("generateName")
            if not prefix:
                raise _invalid(rt, name, "metadata.name", "", "name or generateName is required")
            for _ in range(10):
                name = prefix + "".join(random.choices(_SAFE_ALPHABET, k=5))
                if _key(rt, namespace, name) not in self._store[rt.plural]:
                    break
        meta = {"name": name}
        if meta_in.get("generateName"):
            meta["generateName"] = meta_in["generateName"]
        if rt.namespaced:
            meta["namespace"] = namespace
        meta.update(uid=str(uuid.uuid4()), resourceVersion="", generation=1, creationTimestamp=_now())
        for field in _USER_META:
            if meta_in.get(field) is not None:
                meta[field] = meta_in[field]
        obj = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": meta}
        obj.update((k, v) for k, v in body.items() if k not in _ENVELOPE)
        status = body.get("status") if keep_status or not rt.status_subresource else _initial_status(rt, body)
        if status is not None:
            obj["status"] = status
        _normalize(rt, obj)
        _admit(rt, obj)
        if _key(rt, namespace, name) in self._store[rt.plural]:
            raise ApiError(
                409,
                f'{rt.qualified_plural} "{name}" already exists',
                reason="AlreadyExists",
                details=_details(rt, name),
            )
        meta["resourceVersion"] = self._next_rv()
        self._put(rt, obj)
        return obj

    def _commit(
        self, rt: ResourceType, stored: dict, candidate: dict, *, status_only: bool = False, take_status: bool = False
    ) -> dict:
        """Store ``candidate`` over ``stored`` with the server's rules; return what is stored afterwards.

        Server metadata is kept; client metadata, the spec and everything else outside the envelope come from the
        candidate. The status comes from the candidate only through the status subresource (``status_only``, which
        takes nothing else), for kinds without one, or when seeding (``take_status``). ``generation`` is bumped when
        the part outside metadata and status changes; a write that changes nothing is not stored.
        """
        old_meta = stored["metadata"]
        if status_only:
            new = {k: v for k, v in stored.items() if k != "status"}
            new["metadata"] = dict(old_meta)
            if candidate.get("status") is not None:
                new["status"] = candidate["status"]
        else:
            new_meta = {k: old_meta[k] for k in _SYSTEM_META if k in old_meta}
            meta_in = candidate.get("metadata") or {}
            for field in _USER_META:
                if meta_in.get(field) is not None:
                    new_meta[field] = meta_in[field]
            new = {"apiVersion": rt.api_version, "kind": rt.kind, "metadata": new_meta}
            new.update((k, v) for k, v in candidate.items() if k not in _ENVELOPE)
            status = (candidate if take_status or not rt.status_subresource else stored).get("status")
            if status is not None:
                new["status"] = status
            _normalize(rt, new)
            _admit(rt, new)
            if _spec_part(new) != _spec_part(stored):
                new_meta["generation"] = old_meta.get("generation", 0) + 1
        if new == stored:
            return stored
        new["metadata"]["resourceVersion"] = self._next_rv()
        self._put(rt, new)
        return new

    def _update(self, rt: ResourceType, namespace: str | None, name: str, body, subresource: str | None) -> dict:
        if not isinstance(body, dict):
            raise _bad_request(f"the body of an update must be a {rt.kind} object")
        stored = self._require(rt, namespace, name)
        meta_in = body.get("metadata") or {}
        body_name = meta_in.get("name")
        if body_name and body_name != name:
            raise _bad_request(f"the name of the object ({body_name}) does not match the name on the URL ({name})")
        kind = body.get("kind")
        if kind and kind != rt.kind:
            raise _invalid(rt, name, "kind", kind, f"must be {rt.kind} for {rt.qualified_plural}")
        version = meta_in.get("resourceVersion")
        if version and version != stored["metadata"]["resourceVersion"]:
            raise _conflict(rt, name)
        return self._commit(rt, stored, body, status_only=subresource == "status")

    def _patch(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        content_type: str | None,
        raw: bytes,
        subresource: str | None,
    ) -> tuple[int, dict]:
        media = (content_type or "").split(";")[0].strip().lower()
        stored = self._store[rt.plural].get(_key(rt, namespace, name))
        if media == APPLY_PATCH:
            body = _decode(raw, "application/yaml")
            if not isinstance(body, dict):
                raise _bad_request("an apply patch must be an object")
            if stored is None:
                if subresource:
                    raise _not_found(rt, name)
                meta = body.setdefault("metadata", {})
                if meta.get("name") and meta["name"] != name:
                    raise _bad_request(f"the name of the object ({meta['name']}) does not match the URL ({name})")
                meta["name"] = name
                return 201, self._create(rt, namespace, body)
            candidate = merge_patch(_clone(stored), body)
        elif media in (MERGE_PATCH, STRATEGIC_MERGE_PATCH, JSON_PATCH):
            if media == STRATEGIC_MERGE_PATCH and rt.custom:
                raise ApiError(
                    415,
                    f"the body of the request was in an unknown format - accepted media types "
                    f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}",
                )
            if stored is None:
                raise _not_found(rt, name)
            patch = _decode(raw, "application/json") if raw else None
            if media == JSON_PATCH:
                if not isinstance(patch, list):
                    raise _bad_request("a JSON patch must be a list of operations")
                try:
                    candidate = json_patch(_clone(stored), patch)
                except PatchError as error:
                    raise ApiError(
                        422,
                        f"the server rejected our request due to an error in our request: {error}",
                        details=_details(rt, name),
                    ) from None
            elif not isinstance(patch, dict):
                raise _bad_request("a merge patch must be a JSON object")
            elif media == MERGE_PATCH:
                candidate = merge_patch(_clone(stored), patch)
            else:
                candidate = strategic_merge_patch(_clone(stored), patch)
        else:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}, {APPLY_PATCH}",
            )
        if not isinstance(candidate, dict):
            raise _invalid(rt, name, "<root>", None, "the patched document must be an object")
        if candidate.get("kind") not in (None, rt.kind):
            raise _invalid(rt, name, "kind", candidate["kind"], f"must be {rt.kind}")
        version = (candidate.get("metadata") or {}).get("resourceVersion")
        if version and version != stored["metadata"]["resourceVersion"]:
            raise _conflict(rt, name)
        return 200, self._commit(rt, stored, candidate, status_only=subresource == "status")

    def _delete(self, rt: ResourceType, namespace: str | None, name: str, *, orphan: bool = False) -> dict | None:
        """Delete one object, its namespace's contents (for a Namespace) and its dependents (unless orphaned)."""
        key = _key(rt, namespace, name)
        obj = self._store[rt.plural].pop(key, None)
        if obj is None:
            return None
        self._unindex(rt, obj)
        self._next_rv()
        if rt.plural == "namespaces":
            for other in RESOURCES.values():
                if other.namespaced:
                    for child_ns, child_name in [k for k in self._store[other.plural] if k[0] == name]:
                        self._delete(other, child_ns, child_name)
        if not orphan:
            for plural, child_ns, child_name in list(self._owned.pop(obj["metadata"]["uid"], ())):
                self._delete(RESOURCES[plural], child_ns or None, child_name)
        return obj

    def _delete_request(self, rt: ResourceType, namespace: str | None, name: str, options, query: dict) -> dict:
        stored = self._require(rt, namespace, name)
        options = options if isinstance(options, dict) else {}
        preconditions = options.get("preconditions") or {}
        uid, version = preconditions.get("uid"), preconditions.get("resourceVersion")
        if uid and uid != stored["metadata"]["uid"]:
            raise _conflict(
                rt,
                name,
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: {stored['metadata']['uid']}",
            )
        if version and version != stored["metadata"]["resourceVersion"]:
            raise _conflict(
                rt,
                name,
                f"Precondition failed: ResourceVersion in precondition: {version}, "
                f"ResourceVersion in object meta: {stored['metadata']['resourceVersion']}",
            )
        policy = query.get("propagationPolicy") or options.get("propagationPolicy")
        orphan = (
            policy == "Orphan" or options.get("orphanDependents") is True or query.get("orphanDependents") == "true"
        )
        deleted = self._delete(rt, namespace, name, orphan=orphan)
        if rt.custom:
            return deleted
        details = {**_details(rt, name), "uid": deleted["metadata"]["uid"]}
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    def _delete_collection(self, rt: ResourceType, namespace: str | None, query: dict) -> dict:
        listed = self._list(rt, namespace, {k: v for k, v in query.items() if k in ("labelSelector", "fieldSelector")})
        orphan = query.get("propagationPolicy") == "Orphan"
        deleted = []
        for obj in listed["items"]:
            meta = obj["metadata"]
            if self._delete(rt, meta.get("namespace"), meta["name"], orphan=orphan) is not None:
                deleted.append(obj)
        listed["items"] = deleted
        listed["metadata"] = {"resourceVersion": str(self._rv)}
        return listed

    # ---- simulate_pods helpers (lock held) ------------------------------------------------------------------------

    def _remove_deployment_pods(self, dep: dict) -> None:
        pods = RESOURCES["pods"]
        gone = set()
        for plural, namespace, name in list(self._owned.get(dep["metadata"]["uid"], ())):
            if plural == "pods":
                pod = self._delete(pods, namespace, name)
                if pod is not None:
                    gone.add(pod["metadata"]["uid"])
        if gone:
            events = self._store["events"]
            namespace = dep["metadata"]["namespace"]
            for key in [k for k, e in events.items() if k[0] == namespace and e["involvedObject"].get("uid") in gone]:
                del events[key]

    def _create_simulated_pod(
        self, dep: dict, template: dict, pod_hash: str, index: int, nodes: list[str], state: str, message: str, now: str
    ) -> None:
        dep_meta = dep["metadata"]
        namespace, name = dep_meta["namespace"], f"{dep_meta['name']}-{pod_hash}-{index}"
        template_meta = template.get("metadata") or {}
        match_labels = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = {**(template_meta.get("labels") or {}), **match_labels, "pod-template-hash": pod_hash}
        self._pod_seq += 1
        node = nodes[self._pod_seq % len(nodes)]
        uid = str(uuid.uuid4())
        meta = {
            "name": name,
            "generateName": f"{dep_meta['name']}-{pod_hash}-",
            "namespace": namespace,
            "uid": uid,
            "resourceVersion": self._next_rv(),
            "generation": 1,
            "creationTimestamp": now,
            "labels": labels,
        }
        if template_meta.get("annotations"):
            meta["annotations"] = dict(template_meta["annotations"])
        meta["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": dep_meta["name"],
                "uid": dep_meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        spec = _clone(template.get("spec") or {})
        scheduled = state != "unschedulable"
        if scheduled:
            spec["nodeName"] = node
        containers = spec.get("containers") or []
        status, event = _pod_status(state, containers, name, namespace, uid, message, now)
        if scheduled:
            ip = f"10.244.{self._pod_seq // 250 % 250}.{self._pod_seq % 250 + 2}"
            status.update(hostIP=f"10.0.0.{nodes.index(node) % 250 + 2}", podIP=ip, podIPs=[{"ip": ip}], startTime=now)
        status["qosClass"] = "BestEffort" if not any(c.get("resources") for c in containers) else "Burstable"
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
        self._put(RESOURCES["pods"], pod)
        if event is not None:
            reason, text = event
            component = "kubelet" if scheduled else "default-scheduler"
            self._put(
                RESOURCES["events"], _event(namespace, name, uid, reason, text, component, node, now, self._next_rv())
            )

    def _set_deployment_status(self, dep: dict, pod_hash: str, count: int, state: str, now: str) -> None:
        ready = count if state == "ready" else 0
        available_ok = ready == count
        replica_set = f"{dep['metadata']['name']}-{pod_hash}"
        status: dict = {"observedGeneration": dep["metadata"].get("generation", 1)}
        for field, value in (
            ("replicas", count),
            ("updatedReplicas", count),
            ("readyReplicas", ready),
            ("availableReplicas", ready),
            ("unavailableReplicas", count - ready),
        ):
            if value:
                status[field] = value
        previous = {c.get("type"): c for c in (dep.get("status") or {}).get("conditions") or ()}
        conditions = [
            (
                "Available",
                available_ok,
                "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                "Deployment has minimum availability."
                if available_ok
                else "Deployment does not have minimum availability.",
            ),
            (
                "Progressing",
                True,
                "NewReplicaSetAvailable" if available_ok else "ReplicaSetUpdated",
                f'ReplicaSet "{replica_set}" has successfully progressed.'
                if available_ok
                else f'ReplicaSet "{replica_set}" is progressing.',
            ),
        ]
        status["conditions"] = []
        for kind, ok, reason, text in conditions:
            value = "True" if ok else "False"
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == value else None
            status["conditions"].append(
                {
                    "type": kind,
                    "status": value,
                    "lastUpdateTime": now,
                    "lastTransitionTime": since or now,
                    "reason": reason,
                    "message": text,
                }
            )
        self._commit(RESOURCES["deployments"], dep, {"status": status}, status_only=True)


# --------------------------------------------------------------------------------------------------------------------
# Helpers


def _resource(plural: str) -> ResourceType:
    try:
        return RESOURCES[plural]
    except KeyError:
        raise KeyError(f"unknown resource {plural!r}; served: {sorted(RESOURCES)}") from None


def _key(rt: ResourceType, namespace: str | None, name: str) -> tuple[str, str]:
    return ((namespace or "") if rt.namespaced else "", name)


def _object_key(obj: dict) -> tuple[str, str]:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in _ENVELOPE}


def _initial_status(rt: ResourceType, body: dict):
    """The status a create through the main resource starts with, for kinds with a status subresource."""
    if rt.plural == "namespaces":
        return {"phase": "Active"}
    if rt.plural == "pods":
        return {"phase": "Pending"}
    if rt.plural == "deployments":
        return {}
    if rt.plural == "nodes":
        return body.get("status")  # the kubelet registers its node with a status
    return None  # custom resources start without one


def _normalize(rt: ResourceType, obj: dict) -> None:
    """The defaulting the emulator does (never mutating nested values in place: they may be shared)."""
    if rt.plural == "deployments":
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("replicas") is None:
            obj["spec"] = {**spec, "replicas": 1}
    elif rt.plural == "secrets":
        if obj.get("type") is None:
            obj["type"] = "Opaque"
        string_data = obj.pop("stringData", None)
        if string_data:
            data = dict(obj.get("data") or {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
    elif rt.plural == "namespaces":
        meta = obj["metadata"]
        meta["labels"] = {**(meta.get("labels") or {}), "kubernetes.io/metadata.name": meta["name"]}


def _admit(rt: ResourceType, obj: dict) -> None:
    """Validate what the emulator validates: the name, label keys and values, annotation keys."""
    meta = obj["metadata"]
    name = meta.get("name") or ""
    why = name_error(rt.name_rule, name)
    if why:
        raise _invalid(rt, name, "metadata.name", name, why)
    for field in ("labels", "annotations"):
        mapping = meta.get(field)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise _invalid(rt, name, f"metadata.{field}", mapping, "must be a map of strings")
        for key, value in mapping.items():
            why = qualified_name_error(key)
            if why:
                raise _invalid(rt, name, f"metadata.{field}", key, why)
            why = label_value_error(value) if field == "labels" else (None if isinstance(value, str) else "string")
            if why:
                raise _invalid(rt, name, f"metadata.{field}", value, why)


def _decode(raw: bytes, content_type: str | None):
    try:
        return json.loads(raw)
    except ValueError:
        if yaml is not None and "yaml" in (content_type or ""):
            try:
                return yaml.safe_load(raw)
            except yaml.YAMLError:
                pass
        raise _bad_request("the request body could not be decoded as JSON") from None


def _template_hash(template: dict) -> str:
    digest = hashlib.sha256(_ENCODER.encode(_sorted(template)).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:10])


def _sorted(doc):
    if isinstance(doc, dict):
        return {k: _sorted(doc[k]) for k in sorted(doc)}
    if isinstance(doc, list):
        return [_sorted(v) for v in doc]
    return doc


def _pod_status(state: str, containers: list, pod: str, namespace: str, uid: str, message: str, now: str):
    """``(pod status, (event reason, event message) or None)`` for a pod in ``state``."""
    if state == "unschedulable":
        text = message or "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "lastProbeTime": None,
            "lastTransitionTime": now,
            "reason": "Unschedulable",
            "message": text,
        }
        return {"phase": "Pending", "conditions": [condition]}, ("FailedScheduling", text)
    ready = state == "ready"
    statuses, event = [], None
    for container in containers:
        name, image = container.get("name", ""), container.get("image", "")
        status = {
            "name": name,
            "image": image,
            "imageID": "",
            "ready": ready,
            "started": ready,
            "restartCount": 0,
            "state": {},
            "lastState": {},
        }
        if state != "progressing" and state != "image_pull":
            digest = hashlib.sha256(image.encode()).hexdigest()
            status["imageID"] = f"{image.split(':')[0]}@sha256:{digest}"
            status["containerID"] = f"containerd://{hashlib.sha256(f'{uid}/{name}'.encode()).hexdigest()}"
        if ready:
            status["state"] = {"running": {"startedAt": now}}
        elif state == "image_pull":
            text = message or f'Back-off pulling image "{image}"'
            status["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": text}}
            event = event or ("BackOff", text)
        elif state == "progressing":
            status["state"] = {"waiting": {"reason": "ContainerCreating", **({"message": message} if message else {})}}
        else:  # crash_loop, oom
            oom = state == "oom"
            text = message or f"back-off 5m0s restarting failed container={name} pod={pod}_{namespace}({uid})"
            status["restartCount"] = 5
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": text}}
            status["lastState"] = {
                "terminated": {
                    "exitCode": 137 if oom else 1,
                    "reason": "OOMKilled" if oom else "Error",
                    "startedAt": now,
                    "finishedAt": now,
                    "containerID": status["containerID"],
                }
            }
            event = event or (
                "BackOff",
                message or f"Back-off restarting failed container {name} in pod {pod}_{namespace}({uid})",
            )
        statuses.append(status)
    unready = " ".join(s["name"] for s in statuses if not s["ready"])

    def condition(kind: str, ok: bool, reason: str | None = None, text: str | None = None) -> dict:
        doc = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None, "lastTransitionTime": now}
        if reason:
            doc.update(reason=reason, message=text)
        return doc

    conditions = [
        condition("PodReadyToStartContainers", state != "progressing"),
        condition("Initialized", True),
        condition(
            "Ready", ready, None if ready else "ContainersNotReady", f"containers with unready status: [{unready}]"
        ),
        condition(
            "ContainersReady",
            ready,
            None if ready else "ContainersNotReady",
            f"containers with unready status: [{unready}]",
        ),
        condition("PodScheduled", True),
    ]
    phase = "Running" if state in ("ready", "crash_loop", "oom") else "Pending"
    return {"phase": phase, "conditions": conditions, "containerStatuses": statuses}, event


def _event(
    namespace: str, pod: str, pod_uid: str, reason: str, message: str, component: str, node: str, now: str, version: str
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{pod}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
            "uid": str(uuid.uuid4()),
            "resourceVersion": version,
            "generation": 1,
            "creationTimestamp": now,
        },
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod, "uid": pod_uid, "apiVersion": "v1"},
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": node} if component == "kubelet" else {})},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": "Warning",
        "reportingComponent": component,
        "reportingInstance": node if component == "kubelet" else "",
    }


# --------------------------------------------------------------------------------------------------------------------
# Routing and discovery


def _route(method: str, path: str, query: dict) -> _Route:
    """Map a method and URL path to a verb and a resource (or a discovery document); raise ApiError otherwise."""
    parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
    if method == "GET" and len(parts) == 1 and parts[0] in ("healthz", "livez", "readyz"):
        return _Route("get", text="ok")
    if method == "GET" and parts == ["version"]:
        return _Route("get", document=_VERSION)
    if method == "GET" and parts[:2] == ["openapi", "v3"]:
        document = _OPENAPI_V3.get("/".join(parts[2:]))
        if document is None:
            raise ApiError(404, "the server could not find the requested resource")
        return _Route("get", document=document)
    if not parts or parts[0] not in ("api", "apis"):
        raise ApiError(404, "the server could not find the requested resource")
    if parts[0] == "api":
        if len(parts) == 1 and method == "GET":
            return _Route("get", document=_API_VERSIONS)
        if len(parts) < 2 or parts[1] != "v1":
            raise ApiError(404, "the server could not find the requested resource")
        group, version, rest = "", "v1", parts[2:]
    else:
        if len(parts) <= 2 and method == "GET":
            if len(parts) == 1:
                return _Route("get", document=_API_GROUPS)
            if parts[1] in _API_GROUP_BY_NAME:
                return _Route("get", document=_API_GROUP_BY_NAME[parts[1]])
        if len(parts) < 3 or (parts[1], parts[2]) not in _GROUP_VERSIONS:
            raise ApiError(404, "the server could not find the requested resource")
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        if method != "GET":
            raise ApiError(405, "the server does not allow this method on the requested resource")
        return _Route("get", document=_RESOURCE_LISTS[(group, version)])
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] == "status"):
        namespace, rest = rest[1], rest[2:]
    rt = _BY_PATH.get((group, version, rest[0]))
    if rt is None or len(rest) > 3 or (namespace is not None and not rt.namespaced):
        raise ApiError(404, "the server could not find the requested resource")
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and (subresource != "status" or not rt.status_subresource):
        raise ApiError(404, "the server could not find the requested resource")
    if name is not None and rt.namespaced and namespace is None:
        raise ApiError(404, "the server could not find the requested resource")
    route = _Route("", rt, namespace, name, subresource)
    collection_ok = namespace is not None or not rt.namespaced
    if method == "GET":
        if name is None and query.get("watch") in ("true", "1"):
            raise ApiError(405, "watch is not emulated")
        route.verb = "get" if name else "list"
    elif method == "POST" and name is None and collection_ok:
        route.verb = "create"
    elif method == "PUT" and name is not None:
        route.verb = "update"
    elif method == "PATCH" and name is not None:
        route.verb = "patch"
    elif method == "DELETE" and subresource is None and (name is not None or collection_ok):
        route.verb = "delete" if name else "deletecollection"
    else:
        raise ApiError(405, "the server does not allow this method on the requested resource")
    return route


_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0-aicp-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.24.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _openapi_v3_documents() -> dict[str, dict]:
    """``/openapi/v3`` and one document per group-version, as clients that validate before writing fetch them.

    Each kind's schema is an open object tagged with its group, version and kind: enough for a client to find the
    kind, and it accepts every object (the emulator does no schema validation; tests validate manifests with
    ``kubernetes-validate``). Each item path's PATCH lists the ``fieldValidation`` parameter, which tells clients
    such as Helm that the server validates fields itself, so they skip their own validation against
    ``/openapi/v2`` (not served).
    """
    documents: dict[str, dict] = {"": {"paths": {}}}
    for group, version in _GROUP_VERSIONS:
        path = f"apis/{group}/{version}" if group else f"api/{version}"
        field_validation = {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}
        paths = {
            f"/{path}/{'namespaces/{namespace}/' if rt.namespaced else ''}{rt.plural}/{{name}}": {
                "patch": {
                    "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                    "parameters": [field_validation],
                    "responses": {"200": {"description": "OK"}},
                }
            }
            for rt in RESOURCES.values()
            if (rt.group, rt.version) == (group, version)
        }
        schemas = {
            f"io.aicp.emulator.{rt.group or 'core'}.{rt.version}.{rt.kind}": {
                "type": "object",
                "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": rt.kind}],
            }
            for rt in RESOURCES.values()
            if (rt.group, rt.version) == (group, version)
        }
        documents[""]["paths"][path] = {"serverRelativeURL": f"/openapi/v3/{path}"}
        documents[path] = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": _VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": schemas},
        }
    return documents


_API_VERSIONS = {
    "kind": "APIVersions",
    "versions": ["v1"],
    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}],
}


def _group_document(group: str) -> dict:
    versions = [{"groupVersion": f"{g}/{v}", "version": v} for g, v in _GROUP_VERSIONS if g == group]
    return {"name": group, "versions": versions, "preferredVersion": dict(versions[0])}


_API_GROUP_BY_NAME = {
    group: {"kind": "APIGroup", "apiVersion": "v1", **_group_document(group)} for group, _ in _GROUP_VERSIONS if group
}
_API_GROUPS = {
    "kind": "APIGroupList",
    "apiVersion": "v1",
    "groups": [_group_document(group) for group in sorted({g for g, _ in _GROUP_VERSIONS if g})],
}


def _resource_list(group: str, version: str) -> dict:
    resources = []
    for rt in RESOURCES.values():
        if (rt.group, rt.version) != (group, version):
            continue
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update"]
        entry = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": verbs,
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        resources.append(entry)
        if rt.status_subresource:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


_RESOURCE_LISTS = {(group, version): _resource_list(group, version) for group, version in _GROUP_VERSIONS}
_OPENAPI_V3 = _openapi_v3_documents()


# --------------------------------------------------------------------------------------------------------------------
# HTTP


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    emulator: KubeEmulator

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away (after its own timeout), or a connection closed by stop()
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive: every answer has a Content-Length and goes out in one write.

    ``handle_one_request`` is replaced by a lean reader (request line, headers into a dict, body by Content-Length or
    chunked): the stdlib's e-mail based header parser costs more than the emulator's whole operation.
    """

    protocol_version = "HTTP/1.1"
    server_version = "kube-emulator/1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        line = self.rfile.readline(65537)
        if not line:
            self.close_connection = True
            return
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self.close_connection = True
            self._write(400, _dumps(_bad_request("malformed request line").status()), "application/json", ())
            return
        method, target, version = parts
        headers: dict[str, str] = {}
        while True:
            header = self.rfile.readline(65537)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        self.close_connection = connection == "close" or (version == "HTTP/1.0" and connection != "keep-alive")
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self._read_body(headers)
        code, payload, content_type, extra = self.server.emulator.handle(
            method, target, headers.get("content-type"), body
        )
        self._write(code, b"" if method == "HEAD" else payload, content_type, extra)

    def _read_body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, code: int, payload: bytes, content_type: str, extra) -> None:
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Unknown"
        lines = [f"HTTP/1.1 {code} {phrase}", f"Content-Type: {content_type}", f"Content-Length: {len(payload)}"]
        lines.extend(f"{name}: {value}" for name, value in extra)
        if self.close_connection:
            lines.append("Connection: close")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload)

    def log_message(self, format, *args) -> None:
        pass
