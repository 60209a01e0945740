"""Runs the configured log sources (files, syslog) into the platform's log pipeline."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from opsloop.observe.record import RawLine
from opsloop.platform import Platform

log = logging.getLogger("opsloop.logs")


def build_sources(platform: Platform) -> list[Any]:
    """Source objects for the ``[logs]`` settings (none when nothing is configured)."""
    cfg = platform.settings.logs
    sources: list[Any] = []
    if cfg.files:
        from opsloop.observe.checkpoint import JsonCheckpointStore
        from opsloop.observe.file_source import FileFollower

        sources.append(
            FileFollower(
                cfg.files,
                checkpoints=JsonCheckpointStore(platform.settings.home / "log_positions.json"),
                from_beginning=cfg.from_beginning,
            )
        )
    if cfg.stdin:
        from opsloop.observe.stdin_source import StdinSource

        sources.append(StdinSource())
    if cfg.syslog_udp_port is not None:
        from opsloop.observe.syslog_server import SyslogUDPServer

        sources.append(SyslogUDPServer(cfg.syslog_host, cfg.syslog_udp_port))
    if cfg.syslog_tcp_port is not None:
        from opsloop.observe.syslog_server import SyslogTCPServer

        sources.append(SyslogTCPServer(cfg.syslog_host, cfg.syslog_tcp_port))
    return sources


async def start_log_sources(sources: list[Any]) -> None:
    """Bind the listeners now, so a port in use stops start-up with a clear error."""
    for src in sources:
        start = getattr(src, "start", None)
        if start is None:
            continue
        try:
            await start()
        except OSError as exc:
            raise RuntimeError(
                f"{type(src).__name__} cannot listen on {src.host}:{src.requested_port}: "
                f"{exc.strerror or exc}"
            ) from None
        log.info(
            "syslog listening", extra={"fields": {"kind": type(src).__name__, "port": src.port}}
        )


async def run_log_sources(platform: Platform, sources: list[Any]) -> None:
    """Feed every source into the pipeline; also close silent windows and snapshot state."""

    async def sink(batch: list[RawLine]) -> None:
        await asyncio.to_thread(platform.logs.ingest, batch)

    async def housekeeping() -> None:
        interval = platform.settings.logs.snapshot_interval_s
        while True:
            await asyncio.sleep(interval)
            try:
                await asyncio.to_thread(platform.logs.tick)
                await asyncio.to_thread(platform.logs.snapshot)
            except Exception:
                log.exception("log housekeeping failed")

    await asyncio.to_thread(lambda: platform.logs)  # load state and replay before serving
    tasks = [asyncio.create_task(housekeeping())]
    for src in sources:
        tasks.append(asyncio.create_task(src.run(sink)))
    try:
        await asyncio.gather(*tasks)
    finally:
        for src in sources:
            src.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
