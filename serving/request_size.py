"""The largest request body the data plane reads, shared by the adapter and our engine so that they agree.

16 MiB holds a 128k-token prompt (0.5-2 MiB of JSON) with room for JSON escapes and list-of-parts content. Above
its limit each answers 413 in the OpenAI error shape with ``too_large_message`` and the code ``request_too_large``.
"""

from __future__ import annotations

DEFAULT_MAX_REQUEST_BYTES = 16 << 20
TOO_LARGE_CODE = "request_too_large"


def too_large_message(limit: int) -> str:
    return f"The request body is over this endpoint's limit of {limit} bytes ({limit / 2**20:g} MiB)."
