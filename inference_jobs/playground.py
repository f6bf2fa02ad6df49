"""The console's playground calls a task the way its callers do: ``POST <access url>/chat/completions`` with a
tenant API key, through the task's gateway port and serving adapter.

A browser page cannot call the access URL itself (another origin, no CORS), so the console relays: it opens
the call with the standard library's ``http.client`` and hands the adapter's server-sent events on, one event
at a time, as they arrive. The API key passes through in the ``Authorization`` header and is kept nowhere.

What goes wrong is told in words a person can act on (``AdapterError``): a refused key, a rate limit, a task
that is not running. Nothing here touches the database, so a relay can outlive its request's transaction.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 120.0  # the longest pause between two chunks of an answer (a long prefill, a busy engine)
MAX_ANSWER_BYTES = 4 * 1024**2
MAX_ERROR_BYTES = 64 * 1024


class AdapterError(Exception):
    """The task could not answer; ``message`` says why in plain words, ``status`` is the adapter's HTTP status
    (502 or 504 when it could not be reached or broke off)."""

    def __init__(self, message: str, *, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


def sse_event(data: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def error_event(error: AdapterError) -> bytes:
    """The relay's own event for a failure, which the playground's script shows in the chat."""
    return sse_event({"message": error.message, "status": error.status}, event="error")


def _adapter_detail(body: bytes) -> str:
    """The message of an OpenAI-style error body (the adapter's and the engines' shape), else the text."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace").strip()[:300]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(parsed, dict) and parsed.get("detail"):
        return str(parsed["detail"])
    return json.dumps(parsed)[:300]


def refusal_message(status: int, body: bytes, retry_after: str | None = None) -> str:
    detail = _adapter_detail(body)
    if status == 401:
        return "The task refused the API key (401): use an API key of the task's tenant, copied whole."
    if status == 429:
        wait = f" Try again in {retry_after} s." if retry_after else ""
        return f"Too many requests (429): {detail or 'the tenant reached its rate limit.'}{wait}"
    if 400 <= status < 500:
        return f"The task refused the request ({status}): {detail or 'no reason given.'}"
    return f"The task failed to answer ({status}): {detail or 'no reason given.'}"


def _unreachable(access_url: str, exc: Exception) -> AdapterError:
    if isinstance(exc, ConnectionRefusedError):
        return AdapterError(
            f"Nothing answers at {access_url} (connection refused): the task is not running there.", status=502
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return AdapterError(f"The task at {access_url} did not answer in time.", status=504)
    return AdapterError(f"The task at {access_url} could not be reached: {exc}.", status=502)


def _open(access_url: str, api_key: str, body: dict[str, Any]) -> tuple[http.client.HTTPConnection, Any]:
    """Send the chat request; return the connection and the adapter's 200 response, or raise AdapterError."""
    url = urlsplit(access_url)
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(url.hostname, url.port, timeout=CONNECT_TIMEOUT_S)
    payload = json.dumps(body).encode()
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if body.get("stream") else "application/json",
    }
    try:
        connection.connect()
        connection.sock.settimeout(READ_TIMEOUT_S)
        connection.request("POST", url.path.rstrip("/") + "/chat/completions", body=payload, headers=headers)
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        raise _unreachable(access_url, exc) from None
    if response.status != 200:
        try:
            detail = response.read(MAX_ERROR_BYTES)
        except (OSError, http.client.HTTPException):
            detail = b""
        connection.close()
        message = refusal_message(response.status, detail, response.getheader("Retry-After"))
        raise AdapterError(message, status=response.status)
    return connection, response


class ChatStream:
    """An answer on its way: the adapter said 200 and its events can be read as they come."""

    def __init__(self, access_url: str, connection: http.client.HTTPConnection, response):
        self.access_url = access_url
        self.connection = connection
        self.response = response

    def events(self) -> Iterator[bytes]:
        """Each server-sent event of the adapter, unchanged, as soon as its closing blank line arrived; an
        ``error`` event if the answer breaks off. Closes the connection when done or abandoned."""
        pending: list[bytes] = []
        try:
            while True:
                line = self.response.readline()
                if not line:
                    break
                pending.append(line)
                if line in (b"\n", b"\r\n"):
                    yield b"".join(pending)
                    pending = []
            if pending:
                yield b"".join(pending) + b"\n"
        except (OSError, http.client.HTTPException) as exc:
            slow = isinstance(exc, TimeoutError | socket.timeout)
            reason = "it took too long" if slow else str(exc) or type(exc).__name__
            yield error_event(AdapterError(f"The answer broke off: {reason}.", status=502))
        finally:
            self.connection.close()


def chat_stream_open(access_url: str, api_key: str, body: dict[str, Any]) -> ChatStream:
    """Start a streamed chat completion (``body["stream"]`` is set); raises ``AdapterError`` before any
    event when the adapter refuses or cannot be reached."""
    connection, response = _open(access_url, api_key, {**body, "stream": True})
    return ChatStream(access_url, connection, response)


def chat_complete(access_url: str, api_key: str, body: dict[str, Any]) -> dict[str, Any]:
    """A whole (not streamed) chat completion, for the playground without JavaScript."""
    connection, response = _open(access_url, api_key, {**body, "stream": False})
    try:
        raw = response.read(MAX_ANSWER_BYTES)
    except (OSError, http.client.HTTPException) as exc:
        raise _unreachable(access_url, exc) from None
    finally:
        connection.close()
    try:
        return json.loads(raw)
    except ValueError:
        raise AdapterError("The task's answer was not JSON.", status=502) from None


def answer_text(completion: dict[str, Any]) -> str:
    """The assistant's text in a chat completion."""
    try:
        return completion["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise AdapterError("The task's answer had no message.", status=502) from None
