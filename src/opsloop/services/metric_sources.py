"""Runs the configured Prometheus scrapes into the metric pipeline and snapshots its state."""

from __future__ import annotations

import asyncio
import logging

from opsloop.platform import Platform
from opsloop.store.telemetry import MetricSample

log = logging.getLogger("opsloop.metrics")


async def run_metric_sources(platform: Platform) -> None:
    """Scrape every ``[[metrics.scrape]]`` target and snapshot detector state, until cancelled."""
    cfg = platform.settings.metrics
    await asyncio.to_thread(lambda: platform.metrics)  # load state before the first sample

    async def sink(samples: list[MetricSample]) -> None:
        await asyncio.to_thread(platform.metrics.ingest, samples)

    async def snapshots() -> None:
        while True:
            await asyncio.sleep(cfg.snapshot_interval_s)
            try:
                await asyncio.to_thread(platform.metrics.snapshot)
            except Exception:
                log.exception("metric state snapshot failed")

    tasks = [asyncio.create_task(snapshots())]
    scraper = None
    if cfg.scrape:
        from opsloop.observe.scrape import Scraper, ScrapeTarget

        targets = [
            ScrapeTarget(t.url, t.interval_s, t.timeout_s, dict(t.labels), t.name)
            for t in cfg.scrape
        ]
        scraper = Scraper(targets)
        tasks.append(asyncio.create_task(scraper.run(sink)))
        log.info("scraping", extra={"fields": {"targets": [t.url for t in targets]}})
    try:
        await asyncio.gather(*tasks)
    finally:
        if scraper is not None:
            scraper.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
