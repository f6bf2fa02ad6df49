"""Every call AICP makes to a Kubernetes API server goes through this module (the official ``kubernetes`` client).

Objects travel as plain dicts: reads ask for the raw JSON (``_preload_content=False``) and parse it once, which
is several times faster than the client's model deserialisation and keeps the comparison code simple; writes
hand the client dicts, which it validates against its models before sending.

Errors are sorted into the three kinds the reconciler handles differently:

* ``TemporaryError``: 409 conflicts, 429, 5xx, timeouts and connection errors; retried with backoff;
* ``PermanentError``: 400, 401, 403, 404 on a write, 422 and client-side validation; the task shows
  ``failed`` with the message until its spec changes;
* anything else propagates as it is (unexpected: retried, then recorded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

import kubernetes.client as k8s
import pydantic
import urllib3
from django.conf import settings
from kubernetes.client.exceptions import ApiException

MERGE_PATCH = "application/merge-patch+json"


class KubeError(Exception):
    """A call to the API server failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class TemporaryError(KubeError):
    pass


class PermanentError(KubeError):
    pass


@dataclass(frozen=True)
class Kind:
    kind: str
    api: str  # the client's API class, e.g. "AppsV1Api"
    snake: str  # as in the client's method names: read_namespaced_<snake>
    namespaced: bool = True
    custom: tuple[str, str, str] | None = None  # (group, version, plural) for CustomObjectsApi


_GATEWAY_API = ("gateway.networking.k8s.io", "v1")
KINDS = {
    kind.kind: kind
    for kind in (
        Kind("Namespace", "CoreV1Api", "namespace", namespaced=False),
        Kind("Node", "CoreV1Api", "node", namespaced=False),
        Kind("ResourceQuota", "CoreV1Api", "resource_quota"),
        Kind("Secret", "CoreV1Api", "secret"),
        Kind("Service", "CoreV1Api", "service"),
        Kind("Pod", "CoreV1Api", "pod"),
        Kind("Event", "CoreV1Api", "event"),
        Kind("NetworkPolicy", "NetworkingV1Api", "network_policy"),
        Kind("Deployment", "AppsV1Api", "deployment"),
        Kind("Gateway", "CustomObjectsApi", "", custom=(*_GATEWAY_API, "gateways")),
        Kind("HTTPRoute", "CustomObjectsApi", "", custom=(*_GATEWAY_API, "httproutes")),
    )
}


def _describe(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason or exc)


def classify(exc: Exception, *, write: bool) -> KubeError:
    """Map a client exception to a TemporaryError or a PermanentError (others are re-raised by the caller)."""
    if isinstance(exc, ApiException):
        status = exc.status or 0
        message = f"{status} {_describe(exc)}"
        if status in (409, 429) or status >= 500 or status == 0:
            return TemporaryError(message, status)
        if status == 404 and not write:
            return TemporaryError(message, status)
        return PermanentError(message, status)
    if isinstance(exc, urllib3.exceptions.HTTPError | TimeoutError | ConnectionError):
        return TemporaryError(f"API server unreachable or slow: {type(exc).__name__}: {exc}")
    if isinstance(exc, pydantic.ValidationError):
        return PermanentError(f"invalid object: {exc.errors()[0].get('msg', exc)}", 422)
    raise exc


class KubeAPI:
    """A thin dict-in, dict-out layer over the typed APIs of the official client."""

    def __init__(self, api_client: k8s.ApiClient, timeout_s: float = 10.0):
        self.client = api_client
        self.timeout = (min(timeout_s, 5.0), timeout_s)
        self._apis: dict[str, object] = {}

    def _api(self, name: str):
        if name not in self._apis:
            self._apis[name] = getattr(k8s, name)(self.client)
        return self._apis[name]

    def _call(self, kind: Kind, verb: str, *, name=None, namespace=None, body=None, **extra):
        """``verb`` in read/create/patch/delete/list; returns the parsed JSON body, or None for a 404 read/delete."""
        api = self._api(kind.api)
        kwargs = {"_preload_content": False, "_request_timeout": self.timeout, **extra}
        if kind.custom:
            group, version, plural = kind.custom
            args = [group, version]
            if namespace is not None:
                args.append(namespace)
            args.append(plural)
            method = {
                "read": "get_namespaced_custom_object",
                "create": "create_namespaced_custom_object",
                "patch": "patch_namespaced_custom_object",
                "delete": "delete_namespaced_custom_object",
                "list": "list_namespaced_custom_object" if namespace is not None else "list_cluster_custom_object",
            }[verb]
        else:
            args = []
            scope = "namespaced_" if kind.namespaced and namespace is not None else ""
            if verb == "list" and kind.namespaced and namespace is None:
                method = f"list_{kind.snake}_for_all_namespaces"
            else:
                method = f"{verb}_{scope}{kind.snake}"
        if name is not None:
            args = [*args, name] if kind.custom else [name]
        if namespace is not None and not kind.custom:
            args.append(namespace)
        if body is not None:
            args.append(body)
        write = verb not in ("read", "list")
        try:
            response = getattr(api, method)(*args, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and verb in ("read", "delete"):
                return None
            raise classify(exc, write=write) from exc
        except Exception as exc:  # sorted by classify, which re-raises what it does not know
            raise classify(exc, write=write) from exc
        return json.loads(response.data) if response.data else {}

    # ---- verbs ----------------------------------------------------------------------------------------------

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        return self._call(KINDS[kind], "read", name=name, namespace=namespace)

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[dict]:
        extra = {"label_selector": label_selector} if label_selector else {}
        if field_selector:
            extra["field_selector"] = field_selector
        return self._call(KINDS[kind], "list", namespace=namespace, **extra).get("items", [])

    def create(self, obj: dict) -> dict:
        meta = obj["metadata"]
        return self._call(KINDS[obj["kind"]], "create", namespace=meta.get("namespace"), body=obj)

    def patch(self, kind: str, name: str, namespace: str | None, body: dict) -> dict:
        """A JSON merge patch; with ``metadata.resourceVersion`` in ``body`` it fails (409) if the object changed."""
        return self._call(KINDS[kind], "patch", name=name, namespace=namespace, body=body, _content_type=MERGE_PATCH)

    def delete(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        """Delete; the API server's answer (a Status, or the object while finalizers run), None if already gone."""
        return self._call(KINDS[kind], "delete", name=name, namespace=namespace)


@cache
def _api_client() -> k8s.ApiClient:
    """In-cluster credentials, a kubeconfig file, or a plain URL (``AICP_KUBE_API_URL``: kubectl proxy, tests)."""
    if settings.AICP_KUBE_API_URL:
        return k8s.ApiClient(k8s.Configuration(host=settings.AICP_KUBE_API_URL))
    from kubernetes import config

    configuration = k8s.Configuration()
    if settings.AICP_KUBECONFIG:
        config.load_kube_config(config_file=settings.AICP_KUBECONFIG, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    return k8s.ApiClient(configuration)


def kube_api() -> KubeAPI:
    return KubeAPI(_api_client(), timeout_s=settings.AICP_KUBE_TIMEOUT_S)


def reset_client() -> None:
    """Forget the cached client (tests point the settings at a new emulator)."""
    _api_client.cache_clear()
