"""Pipeline schedules: APScheduler triggers; each time slot claimed once in the state store.

APScheduler decides *when* (cron or interval triggers, in UTC). What it does not give across
restarts or between two processes sharing a database is *once*: so every firing first claims
its slot (the scheduled time) in ``schedule_slots`` with a conditional update, and only the
claimant runs. After downtime, the missed-run policy decides: ``run_once`` runs the newest
missed slot once, ``skip`` waits for the next slot.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from opsloop.config import PipelineSchedule
from opsloop.store.state import StateDB
from opsloop.store.state.models import ScheduleSlotRow

log = logging.getLogger("opsloop.pipelines.schedule")

MAX_STEPS = 5000  # cron slots walked when looking for the newest past slot


def schedule_id(s: PipelineSchedule) -> str:
    """A stable name for a schedule (the pipeline and its timing).

    >>> schedule_id(PipelineSchedule(pipeline="train", cron="0 3 * * *"))
    'train@cron:0 3 * * *'
    >>> schedule_id(PipelineSchedule(pipeline="train", interval_s=60))
    'train@every:60s'
    """
    timing = f"cron:{s.cron}" if s.cron else f"every:{s.interval_s:g}s"
    return f"{s.pipeline}@{timing}"[:200]


def make_trigger(s: PipelineSchedule) -> Any:
    """The APScheduler trigger; interval slots are aligned to the Unix epoch."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    if s.cron:
        return CronTrigger.from_crontab(s.cron, timezone="UTC")
    return IntervalTrigger(
        seconds=float(s.interval_s or 60), start_date=datetime.fromtimestamp(0, UTC), timezone="UTC"
    )


def latest_slot(s: PipelineSchedule, now: float, after: float | None = None) -> float | None:
    """The newest slot at or before ``now`` (and after ``after``, if given), or ``None``.

    >>> latest_slot(PipelineSchedule(pipeline="p", interval_s=60), 1000.5)
    960.0
    >>> latest_slot(PipelineSchedule(pipeline="p", cron="*/5 * * * *"), 1000.5)
    900.0
    >>> latest_slot(PipelineSchedule(pipeline="p", interval_s=60), 1000.5, after=960.0) is None
    True
    """
    if s.interval_s:
        slot = math.floor(now / s.interval_s) * s.interval_s
        return slot if after is None or slot > after else None
    trigger = make_trigger(s)
    start = after + 1e-3 if after is not None else now - 86400.0
    start = max(start, now - 366 * 86400.0)
    cursor = datetime.fromtimestamp(start, UTC)
    found: float | None = None
    for _ in range(MAX_STEPS):
        nxt = trigger.get_next_fire_time(None, cursor)
        if nxt is None or nxt.timestamp() > now:
            break
        found = nxt.timestamp()
        cursor = nxt + timedelta(microseconds=1000)
    return found


class SlotClaims:
    """Claims of time slots: a slot is claimed by exactly one firing, ever."""

    def __init__(self, db: StateDB) -> None:
        self.db = db

    def last(self, schedule: str) -> float | None:
        """The newest claimed slot of ``schedule``."""
        with self.db.session() as s:
            row = s.get(ScheduleSlotRow, schedule)
            return None if row is None else row.last_slot

    def claim(self, schedule: str, slot: float) -> bool:
        """Claim ``slot``; ``False`` if it (or a later one) was already claimed."""
        now = time.time()
        with self.db.session() as s:
            done = s.execute(
                update(ScheduleSlotRow)
                .where(ScheduleSlotRow.schedule == schedule, ScheduleSlotRow.last_slot < slot)
                .values(last_slot=slot, claimed_at=now)
            )
            if done.rowcount:
                return True
            if s.get(ScheduleSlotRow, schedule) is not None:
                return False
        try:
            with self.db.session() as s:
                s.add(ScheduleSlotRow(schedule=schedule, last_slot=slot, claimed_at=now))
            return True
        except IntegrityError:  # another process inserted it first
            return False


class PipelineScheduler:
    """Runs pipelines on their schedules inside ``opsloop up``."""

    def __init__(
        self,
        schedules: list[PipelineSchedule],
        claims: SlotClaims,
        start_run: Callable[[PipelineSchedule, str], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.schedules = schedules
        self.claims = claims
        self.start_run = start_run
        self.clock = clock
        self._scheduler: Any = None

    def fire(self, s: PipelineSchedule) -> bool:
        """Run the newest due slot of ``s`` if nobody claimed it yet; return whether it ran."""
        sid = schedule_id(s)
        slot = latest_slot(s, self.clock())
        if slot is None or not self.claims.claim(sid, slot):
            return False
        try:
            self.start_run(s, f"schedule:{sid}")
        except Exception:
            log.exception("scheduled run of %s could not start", s.pipeline)
        return True

    def catch_up(self) -> list[str]:
        """At start: apply the missed-run policy; return the schedules that ran now."""
        ran = []
        now = self.clock()
        for s in self.schedules:
            sid = schedule_id(s)
            last = self.claims.last(sid)
            if last is None:
                # first start with this schedule: the current slot counts as seen
                slot = latest_slot(s, now)
                if slot is not None:
                    self.claims.claim(sid, slot)
                continue
            missed = latest_slot(s, now, after=last)
            if missed is None:
                continue
            if s.missed == "run_once":
                if self.fire(s):
                    ran.append(sid)
            else:
                self.claims.claim(sid, missed)
                log.info("schedule %s: skipped the slot missed at %s", sid, missed)
        return ran

    def start(self) -> None:
        """Catch up, then start APScheduler's background thread."""
        if not self.schedules:
            return
        from apscheduler.schedulers.background import BackgroundScheduler

        self.catch_up()
        scheduler = BackgroundScheduler(timezone="UTC")
        for s in self.schedules:
            scheduler.add_job(
                self.fire,
                make_trigger(s),
                args=[s],
                id=schedule_id(s),
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        scheduler.start()
        self._scheduler = scheduler

    def stop(self) -> None:
        """Stop firing (running pipelines finish on their own threads)."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def next_runs(self) -> dict[str, str | None]:
        """When each schedule fires next (ISO time), for the API and dashboard."""
        out: dict[str, str | None] = {}
        now = datetime.fromtimestamp(self.clock(), UTC)
        for s in self.schedules:
            nxt = make_trigger(s).get_next_fire_time(None, now)
            out[schedule_id(s)] = nxt.isoformat() if nxt else None
        return out
