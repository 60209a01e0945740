"""Scrape Prometheus/OpenMetrics endpoints into :class:`MetricSample` batches.

:func:`scrape_once` fetches one :class:`ScrapeTarget` with an ``httpx.AsyncClient``, asking for
OpenMetrics first and the Prometheus text format second (``Accept`` header), parses the page
with :mod:`opsloop.observe.prom_text` and returns a :class:`ScrapeResult`.

What a scrape yields:

* Every parsed sample, flattened: histogram ``_bucket{le=…}``/``_sum``/``_count``, summary
  ``{quantile=…}``/``_sum``/``_count``, counter ``_total`` (and ``_created``), info, stateset
  and gauge samples keep their exposition names and labels. Samples without a timestamp get
  the scrape time.
* Labels: the scraped labels, then ``job`` (the target's ``name``, ``"scrape"`` when empty),
  ``instance`` (``host:port`` of the URL) and the target's own ``labels``. Target labels win;
  a scraped label they would overwrite is kept as ``exported_<name>`` (as Prometheus does).
* Counters: the raw counter samples are kept as they are, and when a :class:`CounterRate` is
  given each also feeds it, which adds a rate sample named by
  :func:`~opsloop.observe.counter_rate.rate_name` (``x_total`` → ``x_per_s``) from the second
  scrape on. No type marker is attached to samples (no ``__type__`` label: ``__`` names are
  reserved); the type is visible in the names (``_total``, ``_per_s``, ``_bucket``…).
* Synthetic samples, like Prometheus: ``up`` (1 when the page was fetched and yielded samples
  or had no errors, else 0), ``scrape_duration_seconds`` and ``scrape_samples_scraped`` (the
  samples on the page, rates not counted).

Malformed lines don't fail the scrape: good lines are kept and each bad one is reported in
:attr:`ScrapeResult.errors`. Bodies over ``max_body_bytes`` (default 10 MiB, decoded size) are
refused with an error — by ``Content-Length`` before reading when present, else while
streaming. The whole request, body included, is bounded by the target's ``timeout_s``.

:class:`Scraper` runs many targets concurrently, each on its own interval with a random
per-target phase (jitter) so targets don't all fire together, and hands every scrape's samples
to an async sink, optionally validated by :func:`~opsloop.observe.sample_check.check_samples`::

    scraper = Scraper([ScrapeTarget("http://127.0.0.1:9100/metrics", name="node")])
    task = asyncio.create_task(scraper.run(sink))
    ...
    scraper.stop(); await task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from opsloop.observe.counter_rate import CounterRate
from opsloop.observe.prom_text import parse
from opsloop.observe.sample_check import DEFAULT_LIMITS, SampleLimits, check_samples
from opsloop.store.telemetry.metrics import MetricSample

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ACCEPT_HEADER",
    "MAX_BODY_BYTES",
    "MetricSink",
    "ScrapeResult",
    "ScrapeTarget",
    "Scraper",
    "scrape_once",
]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
PARSE_IN_THREAD_CHARS = 256 * 1024
"""Pages bigger than this are parsed in a worker thread."""
MAX_ERRORS = 100
"""At most this many parse errors are reported per scrape (then a count of the rest)."""
ACCEPT_HEADER = (
    "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
USER_AGENT = "opsloop-scraper"

MetricSink = Callable[[list[MetricSample]], Awaitable[None]]
"""Where :class:`Scraper` delivers each scrape's samples; it is awaited (back-pressure)."""


@dataclass(frozen=True)
class ScrapeTarget:
    """An endpoint to scrape: URL, interval and timeout in seconds, extra labels, job name.

    >>> t = ScrapeTarget("http://127.0.0.1:9100/metrics", name="node")
    >>> t.job, t.instance
    ('node', '127.0.0.1:9100')
    """

    url: str
    interval_s: float = 15.0
    timeout_s: float = 10.0
    labels: dict[str, str] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"scrape URL must be http(s)://host…, got {self.url!r}")
        if not self.interval_s > 0:
            raise ValueError("interval_s must be positive")
        if not self.timeout_s > 0:
            raise ValueError("timeout_s must be positive")

    @property
    def job(self) -> str:
        """The ``job`` label: the target's name, ``"scrape"`` when it has none."""
        return self.name or "scrape"

    @property
    def instance(self) -> str:
        """The ``instance`` label: ``host:port`` of the URL (default port by scheme)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return f"{host}:{port}"

    def target_labels(self) -> dict[str, str]:
        """``job``, ``instance`` and the target's labels (which may override both)."""
        return {"job": self.job, "instance": self.instance, **self.labels}


@dataclass
class ScrapeResult:
    """One scrape's outcome; ``samples`` include ``up`` and ``scrape_duration_seconds``."""

    samples: list[MetricSample]
    errors: list[str]
    duration_s: float
    up: bool


class _ScrapeFailed(Exception):
    """The page could not be fetched (internal)."""


def _is_openmetrics(content_type: str) -> bool | None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return True
    if media == "text/plain":
        return False
    return None  # unknown: let the parser decide from the text


async def _fetch(
    target: ScrapeTarget, client: httpx.AsyncClient, max_body_bytes: int
) -> tuple[bytes, str, str | None]:
    """GET the page; return (body, content type, charset)."""
    import httpx

    headers = {"Accept": ACCEPT_HEADER, "User-Agent": USER_AGENT}
    headers["X-Prometheus-Scrape-Timeout-Seconds"] = f"{target.timeout_s:g}"
    try:
        async with client.stream(
            "GET", target.url, headers=headers, timeout=target.timeout_s
        ) as resp:
            if not 200 <= resp.status_code < 300:
                raise _ScrapeFailed(f"HTTP status {resp.status_code} {resp.reason_phrase}".strip())
            declared = resp.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_body_bytes:
                raise _ScrapeFailed(
                    f"body too large: Content-Length {declared} exceeds {max_body_bytes} bytes"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_body_bytes:
                    raise _ScrapeFailed(f"body too large: more than {max_body_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks), resp.headers.get("content-type", ""), resp.charset_encoding
    except httpx.TimeoutException:
        raise _ScrapeFailed(f"timeout after {target.timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise _ScrapeFailed(f"request failed: {type(exc).__name__}: {exc}") from None


def _merge_labels(scraped: dict[str, str], target: dict[str, str]) -> dict[str, str]:
    out = dict(scraped)
    for key, value in target.items():
        if key in out and out[key] != value:
            out["exported_" + key] = out[key]
        out[key] = value
    return out


async def scrape_once(
    target: ScrapeTarget,
    client: httpx.AsyncClient,
    *,
    rates: CounterRate | None = None,
    now: float | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> ScrapeResult:
    """Scrape ``target`` once (see the module docstring for what comes back).

    ``rates`` turns counters into rate samples across calls; ``now`` (epoch seconds) is the
    timestamp of samples without one and of the synthetic samples (default: the current time).
    Never raises for a failing target: the failure is in ``errors`` and ``up`` is 0.
    """
    started = time.monotonic()
    ts_now = time.time() if now is None else now
    errors: list[str] = []
    samples: list[MetricSample] = []
    tlabels = target.target_labels()
    up = False
    scraped = 0
    try:
        body, content_type, charset = await asyncio.wait_for(
            _fetch(target, client, max_body_bytes), timeout=target.timeout_s
        )
    except _ScrapeFailed as exc:
        errors.append(str(exc))
    except TimeoutError:
        errors.append(f"timeout after {target.timeout_s:g}s")
    else:
        try:
            text = body.decode(charset or "utf-8", errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        fmt = _is_openmetrics(content_type)
        if len(text) > PARSE_IN_THREAD_CHARS:  # keep the event loop responsive on big pages
            result = await asyncio.to_thread(parse, text, openmetrics=fmt)
        else:
            result = parse(text, openmetrics=fmt)
        errors.extend(str(e) for e in result.errors[:MAX_ERRORS])
        if len(result.errors) > MAX_ERRORS:
            errors.append(f"… and {len(result.errors) - MAX_ERRORS} more malformed lines")
        raw_counters: list[MetricSample] = []
        for ps in result.samples:
            sample = MetricSample(
                ps.name,
                ps.value,
                ts_now if ps.timestamp_s is None else ps.timestamp_s,
                _merge_labels(ps.labels, tlabels),
            )
            samples.append(sample)
            if ps.family_type == "counter" and not ps.name.endswith("_created"):
                raw_counters.append(sample)
        scraped = len(samples)
        if rates is not None:
            samples.extend(rates.update_many(raw_counters))
        up = bool(result.samples) or not result.errors
    duration = time.monotonic() - started
    samples.append(MetricSample("up", 1.0 if up else 0.0, ts_now, dict(tlabels)))
    samples.append(MetricSample("scrape_duration_seconds", duration, ts_now, dict(tlabels)))
    samples.append(MetricSample("scrape_samples_scraped", float(scraped), ts_now, dict(tlabels)))
    return ScrapeResult(samples=samples, errors=errors, duration_s=duration, up=up)


class Scraper:
    """Scrape many targets concurrently, each on its own interval, into a sink.

    Each target gets a random phase in ``[0, jitter * interval)`` so targets that share an
    interval spread out, then is scraped every ``interval_s`` (a tick missed because a scrape
    overran is skipped, not queued). One :class:`CounterRate` is shared by all targets (series
    carry ``job``/``instance``, so they never mix). When ``limits`` is set (the default) every
    batch goes through :func:`check_samples` first and rejected samples are counted in
    ``stats["rejected"]``; ``limits=None`` delivers everything. A sink that raises is logged and
    does not stop the scraper.

    :meth:`stop` makes :meth:`run` return once in-flight scrapes (bounded by their timeouts) are
    delivered; a stopped scraper stays stopped. ``last_results`` holds each target's most
    recent :class:`ScrapeResult`, by URL.
    """

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        client: httpx.AsyncClient | None = None,
        rates: CounterRate | None = None,
        limits: SampleLimits | None = DEFAULT_LIMITS,
        jitter: float = 0.1,
        max_body_bytes: int = MAX_BODY_BYTES,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be within [0, 1]")
        self.targets = list(targets)
        self.client = client
        self.rates = rates if rates is not None else CounterRate()
        self.limits = limits
        self.jitter = jitter
        self.max_body_bytes = max_body_bytes
        self._rng = rng or random.Random()  # noqa: S311 - scheduling jitter, not security
        self._stop = asyncio.Event()
        self.stats = {"scrapes": 0, "failures": 0, "samples": 0, "rejected": 0, "sink_errors": 0}
        self.last_results: dict[str, ScrapeResult] = {}

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe to call from the scraper's event loop at any time)."""
        self._stop.set()

    async def _sleep(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``True`` if :meth:`stop` was called meanwhile."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        return self._stop.is_set()

    async def _scrape_and_deliver(
        self, target: ScrapeTarget, client: httpx.AsyncClient, sink: MetricSink
    ) -> None:
        try:
            result = await scrape_once(
                target, client, rates=self.rates, max_body_bytes=self.max_body_bytes
            )
        except Exception:  # a bug must not stop the other targets
            self.stats["failures"] += 1
            log.exception("scrape of %s crashed", target.url)
            return
        self.last_results[target.url] = result
        self.stats["scrapes"] += 1
        if not result.up:
            self.stats["failures"] += 1
            log.warning("scrape of %s failed: %s", target.url, "; ".join(result.errors[:3]))
        elif result.errors:
            log.info("scrape of %s: %d malformed lines", target.url, len(result.errors))
        batch = result.samples
        if self.limits is not None:
            batch, rejected = check_samples(batch, limits=self.limits)
            if rejected:
                self.stats["rejected"] += len(rejected)
                log.debug(
                    "%s: %d samples rejected, e.g. %s", target.url, len(rejected), rejected[0]
                )
        self.stats["samples"] += len(batch)
        if not batch:
            return
        try:
            await sink(batch)
        except Exception:
            self.stats["sink_errors"] += 1
            log.exception("metric sink failed for a scrape of %s", target.url)

    async def _loop(
        self, target: ScrapeTarget, client: httpx.AsyncClient, sink: MetricSink
    ) -> None:
        loop = asyncio.get_running_loop()
        phase = self._rng.uniform(0, self.jitter * target.interval_s)
        next_at = loop.time() + phase
        while not await self._sleep(next_at - loop.time()):
            await self._scrape_and_deliver(target, client, sink)
            next_at += target.interval_s
            behind = loop.time() - next_at
            if behind > 0:  # overran: skip the missed ticks
                next_at += (behind // target.interval_s + 1) * target.interval_s

    async def run(self, sink: MetricSink) -> None:
        """Scrape every target until :meth:`stop`; a client is made (and closed) if none given."""
        import httpx

        client = self.client or httpx.AsyncClient(follow_redirects=True)
        try:
            if self.targets:
                await asyncio.gather(*(self._loop(t, client, sink) for t in self.targets))
            else:
                await self._stop.wait()
        finally:
            if self.client is None:
                await client.aclose()
