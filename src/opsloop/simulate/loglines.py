"""Log line templates of the simulated estate, with realistic variable parts.

Each function renders one line the way the real program writes it (nginx's combined format with
request time, PostgreSQL's ``LOG:`` lines, cron, systemd, the kernel's OOM killer, a Python web
app, a billing batch job, a monitoring agent's heartbeat). Variables (addresses, ids, sizes,
durations, paths) come from the caller's seeded :class:`numpy.random.Generator`, so the same seed
gives the same lines. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np

T = TypeVar("T")

_ROUTES: tuple[tuple[str, str, float], ...] = (
    ("GET", "/api/v1/products", 0.24),
    ("GET", "/api/v1/products/{id}", 0.20),
    ("GET", "/api/v1/cart", 0.10),
    ("POST", "/api/v1/cart/items", 0.08),
    ("POST", "/api/v1/checkout", 0.04),
    ("GET", "/api/v1/orders/{id}", 0.08),
    ("GET", "/static/js/app.{hash}.js", 0.10),
    ("GET", "/static/css/site.{hash}.css", 0.06),
    ("GET", "/healthz", 0.10),
)
_ROUTE_P = np.array([r[2] for r in _ROUTES]) / sum(r[2] for r in _ROUTES)
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "okhttp/4.12.0",
    "kube-probe/1.29",
)
_OK_STATUSES = (200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 304, 404)
_TABLES = ("orders", "order_items", "customers", "products", "payments", "carts")


def pick(rng: np.random.Generator, items: Sequence[T], p: Sequence[float] | None = None) -> T:
    """One element of ``items`` (weighted by ``p`` when given)."""
    return items[int(rng.choice(len(items), p=p))]


def _clf_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _hex(rng: np.random.Generator, n: int) -> str:
    return "".join(pick(rng, "0123456789abcdef") for _ in range(n))


def request_id(rng: np.random.Generator) -> str:
    """An app request id such as ``req-3f9c0a1b``."""
    return "req-" + _hex(rng, 8)


def client_ip(rng: np.random.Generator) -> str:
    """A private client address (the load balancer's side)."""
    return f"10.0.{int(rng.integers(0, 8))}.{int(rng.integers(2, 250))}"


def nginx_access(rng: np.random.Generator, ts: float, status: int | None, latency_s: float) -> str:
    """An nginx ``combined`` access line with ``rt=`` (request time); random status if None."""
    method, route, _ = _ROUTES[int(rng.choice(len(_ROUTES), p=_ROUTE_P))]
    path = route.replace("{id}", str(int(rng.integers(1000, 99999)))).replace(
        "{hash}", _hex(rng, 8)
    )
    if route == "/api/v1/products" and rng.random() < 0.5:
        path += f"?page={int(rng.integers(1, 40))}&sort={pick(rng, ('price', 'name', 'new'))}"
    if status is None:
        status = pick(rng, _OK_STATUSES)
    size = 0 if status in (204, 304) else int(rng.integers(180, 48000))
    agent = "kube-probe/1.29" if route == "/healthz" else pick(rng, _AGENTS)
    referer = '"-"' if rng.random() < 0.6 else '"https://shop.example.com/"'
    upstream = f"{latency_s * 0.97:.3f}" if status != 504 else "-"
    return (
        f'{client_ip(rng)} - - [{_clf_time(ts)}] "{method} {path} HTTP/1.1" {status} {size} '
        f'{referer} "{agent}" rt={latency_s:.3f} uct="0.000" urt="{upstream}"'
    )


def app_info(rng: np.random.Generator, latency_ms: float) -> str:
    """A routine line of the shop's Python API (orders, payments, cache)."""
    kind = int(rng.integers(0, 4))
    order = int(rng.integers(10000, 99999))
    if kind == 0:
        total = f"{rng.uniform(5, 400):.2f}"
        customer = int(rng.integers(1000, 9999))
        return (
            f"INFO [shop_api.orders] order {order} created for customer c-{customer} "
            f"total={total} EUR in {latency_ms:.0f} ms"
        )
    if kind == 1:
        method = pick(rng, ("card", "paypal", "sepa"))
        return (
            f"INFO [shop_api.payments] payment authorized for order {order} via {method} "
            f"in {latency_ms * 3:.0f} ms"
        )
    if kind == 2:
        return (
            f"INFO [shop_api.catalog] product page {int(rng.integers(1, 40))} served from cache "
            f"(hit ratio {rng.uniform(0.82, 0.97):.2f})"
        )
    return (
        f"INFO [shop_api.cart] cart {_hex(rng, 6)} updated: {int(rng.integers(1, 9))} items, "
        f"session s-{_hex(rng, 10)}"
    )


def app_warning(rng: np.random.Generator, timeout_ms: int) -> str:
    """A warning of the shop API: a slow upstream, a retry."""
    attempt = int(rng.integers(1, 3))
    return (
        f"WARNING [shop_api.db] query to db1:5432 took longer than {timeout_ms} ms, "
        f"retrying (attempt {attempt}/3) request_id={request_id(rng)}"
    )


def app_exception_baseline(rng: np.random.Generator) -> str:
    """The rare, always-present error: a payment gateway timeout."""
    return (
        f"ERROR [shop_api.payments] payment gateway timed out after 10000 ms for order "
        f"{int(rng.integers(10000, 99999))} request_id={request_id(rng)}: "
        f"TimeoutError: read timeout on psp.example.net:443"
    )


def app_exception_regression(rng: np.random.Generator, version: str) -> str:
    """The error a bad deploy brings: a new exception in checkout."""
    return (
        f"ERROR [shop_api.checkout] unhandled exception in POST /api/v1/checkout "
        f"request_id={request_id(rng)} version={version}: KeyError: 'customer_id' "
        f'(File "/srv/shop_api/checkout.py", line 212, in submit)'
    )


def deploy_line(old: str, new: str, commit: str) -> str:
    """The deploy tool announcing a rollout."""
    return f"deploy: shop-api {old} -> {new} (commit {commit}) rolled out by ci-bot, 2/2 workers"


def rollback_line(bad: str, good: str) -> str:
    """The deploy tool rolling back."""
    return f"deploy: shop-api rolled back {bad} -> {good} by on-call, 2/2 workers"


def pg_checkpoint_start() -> str:
    """PostgreSQL starting a timed checkpoint."""
    return "LOG:  checkpoint starting: time"


def pg_checkpoint_complete(rng: np.random.Generator) -> str:
    """PostgreSQL finishing a checkpoint, with its statistics."""
    buffers = int(rng.integers(300, 6000))
    write = rng.uniform(20.0, 29.5)
    return (
        f"LOG:  checkpoint complete: wrote {buffers} buffers ({buffers / 163.84:.1f}%); "
        f"0 WAL file(s) added, 0 removed, {int(rng.integers(0, 4))} recycled; "
        f"write={write:.3f} s, sync={rng.uniform(0.001, 0.05):.3f} s, "
        f"total={write + 0.1:.3f} s; sync files={int(rng.integers(10, 90))}, "
        f"longest={rng.uniform(0.001, 0.02):.3f} s, average=0.001 s; "
        f"distance={int(rng.integers(2000, 60000))} kB, "
        f"estimate={int(rng.integers(40000, 90000))} kB"
    )


def pg_slow_query(rng: np.random.Generator, duration_ms: float) -> str:
    """A statement over ``log_min_duration_statement``."""
    table = pick(rng, _TABLES)
    key = pick(rng, ("customer_id", "order_id", "created_at"))
    value = (
        f"'{datetime(2026, 1, 1, tzinfo=UTC).date()}'" if key == "created_at"
        else str(int(rng.integers(1000, 99999)))
    )  # fmt: skip
    return (  # a log line that quotes a statement; nothing is executed
        f"LOG:  duration: {duration_ms:.3f} ms  statement: SELECT * FROM {table} "  # noqa: S608
        f"WHERE {key} >= {value} ORDER BY id DESC LIMIT {int(rng.integers(10, 500))}"
    )


def pg_connection(rng: np.random.Generator) -> str:
    """A client connecting."""
    host = f"10.0.3.{int(rng.integers(2, 60))}"
    return f"LOG:  connection received: host={host} port={int(rng.integers(32768, 60999))}"


def pg_authorized() -> str:
    """A connection authorized."""
    return "LOG:  connection authorized: user=shop database=shop application_name=shop-api"


def pg_autovacuum(rng: np.random.Generator) -> str:
    """Autovacuum finishing a table."""
    return (
        f'LOG:  automatic vacuum of table "shop.public.{pick(rng, _TABLES)}": index scans: 1, '
        f"pages: 0 removed, {int(rng.integers(1000, 90000))} remain, "
        f"tuples: {int(rng.integers(100, 20000))} removed, {int(rng.integers(10**5, 10**7))} remain"
    )


def pg_no_space(rng: np.random.Generator) -> str:
    """PostgreSQL failing to write: the disk is full."""
    return (
        f'ERROR:  could not extend file "base/16384/{int(rng.integers(16000, 99999))}": '
        f"No space left on device"
    )


def no_space_generic(mount: str) -> str:
    """Any program failing to write to a full file system."""
    return f"write error on {mount}/var/log/app/current: No space left on device"


def disk_cleanup(mount: str, freed_gb: float) -> str:
    """An operator (or logrotate) freeing space."""
    return f"logrotate: cleanup on {mount} freed {freed_gb:.1f} GB of rotated logs"


def cron_cmd(user: str, command: str) -> str:
    """cron starting a job."""
    return f"({user}) CMD ({command})"


def batch_started(run_id: str, queued: int) -> str:
    """The billing export starting."""
    return f"export started run_id={run_id} queued_invoices={queued}"


def batch_finished(run_id: str, rows: int, seconds: float) -> str:
    """The billing export finishing."""
    return f"export finished run_id={run_id} rows={rows} duration={seconds:.1f}s status=ok"


def heartbeat(seq: int, uptime_s: float, load1: float) -> str:
    """The monitoring agent's periodic heartbeat."""
    return f"heartbeat seq={seq} uptime={uptime_s:.0f}s load1={load1:.2f} status=ok"


def agent_restarted(down_s: float) -> str:
    """The monitoring agent coming back after a stall."""
    return f"agent restarted after {down_s:.0f}s without heartbeat (watchdog), resuming"


def oom_kill(rng: np.random.Generator, pid: int, process: str, uid: int) -> str:
    """The kernel's OOM killer line."""
    rss = int(rng.integers(3_500_000, 7_800_000))
    return (
        f"Out of memory: Killed process {pid} ({process}) total-vm:{rss + 412_000}kB, "
        f"anon-rss:{rss}kB, file-rss:{int(rng.integers(1000, 9000))}kB, shmem-rss:0kB, "
        f"UID:{uid} pgtables:{rss // 500}kB oom_score_adj:0"
    )


def systemd_killed(unit: str) -> str:
    """systemd seeing the main process killed."""
    return f"{unit}: Main process exited, code=killed, status=9/KILL"


def systemd_restart(unit: str, count: int) -> str:
    """systemd scheduling a restart."""
    return f"{unit}: Scheduled restart job, restart counter is at {count}."


def systemd_started(unit: str, description: str) -> str:
    """systemd having started a unit."""
    return f"Started {unit} - {description}."
