"""Traffic policy of one served model: which alias answers, limits, batching, logging.

* **Canary**: ``canary_percent`` of the requests go to the ``challenger`` alias, the rest to
  ``champion``. The split is drawn per request from a seeded generator, so a test can check it.
* **Shadow**: the champion answers; the challenger also scores the same input in the
  background, and both predictions are logged (variants ``champion`` and ``shadow``).
* **Limits**: at most ``max_concurrency`` requests of the model in flight (queued or being
  predicted) per worker process, more are refused with 429; a prediction slower than
  ``timeout_s`` is answered with 504.
* **Batching**: on by default for tabular models; ``batching=False`` turns it off.

>>> split = TrafficSplit(ModelPolicy(canary_percent=25), seed=1)
>>> picks = [split.variant() for _ in range(10_000)]
>>> 0.24 < picks.count("canary") / len(picks) < 0.27
True
"""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

CHAMPION = "champion"
CANARY = "canary"
SHADOW = "shadow"


@dataclass(frozen=True)
class ModelPolicy:
    """How one model is served."""

    alias: str = "champion"
    challenger_alias: str = "challenger"
    canary_percent: float = 0.0
    shadow: bool = False
    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_concurrency: int = 256
    timeout_s: float = 10.0
    log_sample_rate: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.canary_percent <= 100:
            raise ValueError("canary_percent must be between 0 and 100")
        if self.max_batch_size < 1 or self.max_concurrency < 1:
            raise ValueError("max_batch_size and max_concurrency must be at least 1")
        if self.max_wait_ms < 0 or self.timeout_s <= 0:
            raise ValueError("max_wait_ms must be >= 0 and timeout_s > 0")
        if not 0 <= self.log_sample_rate <= 1:
            raise ValueError("log_sample_rate must be between 0 and 1")

    @property
    def uses_challenger(self) -> bool:
        """Whether the challenger alias takes part (canary or shadow)."""
        return self.canary_percent > 0 or self.shadow

    def to_dict(self) -> dict[str, Any]:
        """The policy as plain JSON-able values."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelPolicy:
        """A policy from a mapping; unknown keys are an error."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model policy field(s): {', '.join(sorted(unknown))}")
        return replace(cls(), **data)


class TrafficSplit:
    """Draws the variant of each request: ``champion`` or ``canary``."""

    def __init__(self, policy: ModelPolicy, seed: int | None = None):
        self.policy = policy
        self._random = random.Random(seed)  # noqa: S311 - traffic split, not security
        self._lock = threading.Lock()

    def variant(self) -> str:
        """``canary`` with probability ``canary_percent`` / 100, else ``champion``."""
        percent = self.policy.canary_percent
        if percent <= 0:
            return CHAMPION
        if percent >= 100:
            return CANARY
        with self._lock:
            draw = self._random.random()
        return CANARY if draw * 100 < percent else CHAMPION


class Admission:
    """Counts a model's requests in flight and refuses those over the limit.

    Used from the event loop and from threads alike, so it takes a lock.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    def try_enter(self) -> bool:
        """Take a place; ``False`` when all ``limit`` places are taken."""
        with self._lock:
            if self.in_flight >= self.limit:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        """Give a place back."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
