"""The tenant's tokens-per-minute limit, as a token bucket held by this adapter process.

The bucket holds at most one minute of tokens and refills continuously. A request is admitted while the
bucket is above zero; its real cost (input + output tokens from usage) is charged after it finishes, so a
long request may drive the bucket negative and the following requests wait until it refills ("debt").

The limit is per adapter replica for now: with N replicas behind the gateway a tenant can reach N × the
limit. A shared limiter (Redis, or the gateway) is the follow-up.
"""

from __future__ import annotations

import math
import time


class TokenBucket:
    def __init__(self, tokens_per_minute: int | None, clock=time.monotonic):
        self.capacity = float(tokens_per_minute or 0)
        self.rate = self.capacity / 60.0  # tokens per second
        self.level = self.capacity
        self._clock = clock
        self._at = clock()

    @property
    def unlimited(self) -> bool:
        return self.capacity <= 0

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._at) * self.rate)
        self._at = now

    def retry_after(self) -> int:
        """0 when a request may start now, else whole seconds until the bucket is positive again."""
        if self.unlimited:
            return 0
        self._refill()
        if self.level > 0:
            return 0
        return max(1, math.ceil((1 - self.level) / self.rate))

    def charge(self, tokens: int) -> None:
        if not self.unlimited and tokens > 0:
            self._refill()
            self.level -= tokens
