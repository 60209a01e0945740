"""Runs the incident engine's clock: stale alerts, auto-resolve, notifications."""

from __future__ import annotations

import asyncio
import logging
import time

from opsloop.platform import Platform

log = logging.getLogger("opsloop.incidents")
TICK_S = 1.0


async def run_incident_loop(platform: Platform) -> None:
    """Tick the incident service every second and run its notification dispatcher."""
    service = await asyncio.to_thread(lambda: platform.incidents)
    runbooks = await asyncio.to_thread(lambda: platform.runbooks)  # marks interrupted runs now
    last_minute = int(time.time() // 60)
    service.build_notifications()
    if service.dispatcher is not None:
        await service.dispatcher.start()
    try:
        while True:
            try:
                await asyncio.to_thread(service.tick)
            except Exception:
                log.exception("incident tick failed")
            minute = int(time.time() // 60)
            if minute != last_minute:
                last_minute = minute
                try:
                    await asyncio.to_thread(runbooks.tick)
                except Exception:
                    log.exception("runbook schedules failed")
            await asyncio.sleep(TICK_S)
    finally:
        if service.dispatcher is not None:
            await service.dispatcher.stop(drain_timeout_s=5)
        await asyncio.to_thread(service.flush_deliveries)
