"""What the simulated estate emits: log events, metric samples and model requests.

Plain records, no behaviour: the estate and the faults make them, the senders ship them and the
exposition endpoint serves the samples. Every time is *simulated* epoch seconds (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CHANNELS = ("http", "syslog")
"""How a host ships its logs: HTTP batches to ``/api/v1/logs`` or syslog datagrams/frames."""


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log line as the host wrote it.

    ``app`` is the program (syslog app-name, e.g. ``postgres``, ``kernel``); ``level`` one of
    ``debug, info, notice, warning, error, critical``; ``channel`` how it is shipped; ``facility``
    the syslog facility name; ``pid`` the process id shown in the line, if any.
    """

    ts: float
    host: str
    app: str
    level: str
    message: str
    channel: str = "http"
    facility: str = "daemon"
    pid: int | None = None

    @property
    def source(self) -> str:
        """``host/app``: the source name the line is filed under in opsloop."""
        return f"{self.host}/{self.app}"


@dataclass(frozen=True, slots=True)
class Sample:
    """One gauge value of one series at one (simulated) time."""

    name: str
    value: float
    ts: float
    labels: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        """``name{k="v",...}`` with sorted labels: a readable series id."""
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"


@dataclass(frozen=True, slots=True)
class PredictionRequest:
    """One scoring request to the served model: the feature record and its true outcome.

    ``label`` is the outcome the customer will show later (sent as a delayed label for some
    requests); the model never sees it with the request.
    """

    ts: float
    record: dict[str, Any]
    label: int
