"""Samples the host every ``collector.interval_s`` into the telemetry store."""

from __future__ import annotations

import asyncio
import logging

from opsloop.observe.host import HostCollector
from opsloop.platform import Platform

log = logging.getLogger("opsloop.collector")


async def run_host_collector(platform: Platform) -> None:
    """Loop until cancelled; a failed round is logged and the loop goes on."""
    interval = platform.settings.collector.interval_s
    collector = await asyncio.to_thread(HostCollector)
    log.info("host collector started", extra={"fields": {"interval_s": interval}})
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        try:
            samples = await asyncio.to_thread(collector.sample)
            await asyncio.to_thread(platform.metrics.ingest, samples)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("host collector round failed")
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - loop.time()))
