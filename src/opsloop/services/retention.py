"""Drops telemetry older than the retention settings, on schedule."""

from __future__ import annotations

import asyncio
import logging

from opsloop.platform import Platform

log = logging.getLogger("opsloop.retention")


async def run_retention(platform: Platform) -> None:
    """Sweep at start and every ``retention.check_interval_s`` until cancelled."""
    settings = platform.settings.retention
    while True:
        try:
            removed = await asyncio.to_thread(
                platform.telemetry.drop_older_than, settings.metrics_days
            )
            rolled = await asyncio.to_thread(
                platform.telemetry.downsample_older_than, settings.metrics_raw_days
            )
            purged = await asyncio.to_thread(
                platform.incidents.purge_resolved,
                platform.settings.incidents.resolved_retention_days,
            )
            if purged:
                log.info("purged resolved incidents", extra={"fields": {"incidents": purged}})
            if rolled:
                log.info("downsampled metric days", extra={"fields": {"days": rolled}})
            removed += await asyncio.to_thread(
                platform.telemetry.drop_logs_older_than, settings.logs_days
            )
            if platform.predictions_opened:
                removed += await asyncio.to_thread(
                    platform.predictions.drop_older_than, settings.predictions_days
                )
            if removed:
                log.info("retention sweep", extra={"fields": {"rows_removed": removed}})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("retention sweep failed")
        await asyncio.sleep(settings.check_interval_s)
