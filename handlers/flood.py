"""Per-user flood control: a user sending hundreds of messages a second slows only themselves."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float
    warned: bool = False


class FloodControl:
    """A token bucket per user: `burst` messages at once, then `rate` a second.

    `allow()` answers "reply", "warn" (first message over the limit: tell the user once) or
    "drop" (ignore until the bucket refills). Buckets of the least recent users are forgotten.
    """

    def __init__(
        self,
        rate: float = 3.0,
        burst: int = 30,
        max_users: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_users = rate, burst, max_users
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, user: str) -> str:
        now = self.clock()
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self.burst), now)
            if len(self._buckets) > self.max_users:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(user)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            bucket.warned = False
            return "reply"
        if not bucket.warned:
            bucket.warned = True
            return "warn"
        return "drop"
