"""Registered detector models in the running engine: load the champion live, shadow a challenger.

:class:`ChampionWatcher` polls the model registry every ``reload_interval_s`` (or on
:meth:`~ChampionWatcher.check_now`) for the versions behind the ``champion`` and ``challenger``
aliases of ``opsloop-log-sessions``. A new champion is read (its JSON package only) and swapped
into :class:`~opsloop.services.log_ingest.LogIngest` between two batches, without a restart; the
loaded version is visible as ``LogIngest.session_model_version``. A challenger, when its alias
points elsewhere than the champion, scores every closed session in shadow: it raises no alarm,
its would-be alarms are counted against the champion's (:class:`ShadowCounts`).

**A champion from the registry is frozen: it scores sessions, it does not learn them.** It was
evaluated on labelled data as a fixed artifact and promoted on those figures; learning online
would drift it away from the version whose lineage and metrics the registry shows, and would
absorb the anomalous sessions of live traffic into the rules' support, the failure the labelled
pipeline exists to avoid. New traffic reaches the detector through the next pipeline run
(train, evaluate against this champion, promote if better), which is also what makes a rollback
(moving the alias back) restore exactly the earlier behaviour. Until a champion exists, the
built-in online model keeps learning as before: it bootstraps a fresh install.

A version the engine cannot run is skipped once, with the reason in :meth:`status` (a model
trained on a named template table without the table cannot map live lines). When the champion
alias disappears, the last loaded model stays (a rollback moves the alias, it does not delete it).

:class:`MetricSettingsWatcher` does the same for the metric detector's alarm settings per series
family (``opsloop-metric-settings``, trained by the ``detector-metric-settings`` pipeline): a new
champion's ``{family: settings}`` goes to :meth:`MetricIngest.use_settings
<opsloop.services.metric_ingest.MetricIngest.use_settings>`, which changes the live detectors in
place; the version is ``MetricIngest.settings_version``. There is no shadow: settings have no
state of their own to compare, the pipeline already scored them against the champion's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opsloop.learn.detectors.package import SessionModelPackage
    from opsloop.learn.registry import ModelRegistry
    from opsloop.services.log_ingest import LogIngest
    from opsloop.services.metric_ingest import MetricIngest

log = logging.getLogger("opsloop.models")

__all__ = [
    "METRIC_SETTINGS_MODEL",
    "MODEL_NAME",
    "ChampionWatcher",
    "MetricSettingsWatcher",
    "ShadowCounts",
]

MODEL_NAME = "opsloop-log-sessions"
METRIC_SETTINGS_MODEL = "opsloop-metric-settings"
RECENT = 20


@dataclass
class ShadowCounts:
    """Champion alarms vs a shadow challenger's would-be alarms on the same closed sessions.

    >>> c = ShadowCounts("3", "4")
    >>> c.add("blk_1", 10.0, champion=True, challenger=True, score=5.0)
    >>> c.add("blk_2", 11.0, champion=False, challenger=True, score=2.5)
    >>> c.add("blk_3", 12.0, champion=False, challenger=False, score=0.0)
    >>> d = c.to_dict()
    >>> d["sessions"], d["both"], d["only_challenger"], d["agreement"]
    (3, 1, 1, 0.6666666666666666)
    >>> d["recent_disagreements"][0]["key"]
    'blk_2'
    """

    champion_version: str | None = None
    challenger_version: str | None = None
    sessions: int = 0
    champion_alarms: int = 0
    challenger_alarms: int = 0
    both: int = 0
    only_champion: int = 0
    only_challenger: int = 0
    since: float = field(default_factory=time.time)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=RECENT))

    def add(self, key: str, end: float, champion: bool, challenger: bool, score: float) -> None:
        """Count one session's two verdicts; disagreements are kept (the latest few)."""
        self.sessions += 1
        self.champion_alarms += champion
        self.challenger_alarms += challenger
        if champion and challenger:
            self.both += 1
        elif champion:
            self.only_champion += 1
        elif challenger:
            self.only_challenger += 1
        if champion != challenger:
            self.recent.append(
                {"key": key, "end": end, "champion": champion, "challenger": challenger,
                 "challenger_score": score}
            )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-able counts, with the agreement rate (``None`` before the first session)."""
        agree = self.sessions - self.only_champion - self.only_challenger
        return {
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "since": self.since,
            "sessions": self.sessions,
            "champion_alarms": self.champion_alarms,
            "challenger_alarms": self.challenger_alarms,
            "both": self.both,
            "only_champion": self.only_champion,
            "only_challenger": self.only_challenger,
            "agreement": agree / self.sessions if self.sessions else None,
            "recent_disagreements": list(reversed(self.recent)),
        }


Loader = Callable[[str], "SessionModelPackage"]


class _Poller:
    """Calls ``check_now()`` now and then every ``reload_interval_s`` on a daemon thread.

    Subclasses set ``model_name``, ``reload_interval_s``, ``ready`` (``None`` or a callable
    saying whether checking makes sense yet) and ``thread_name``, and implement ``check_now``.
    """

    model_name: str
    reload_interval_s: float
    ready: Callable[[], bool] | None
    thread_name = "opsloop-models"
    _stop: threading.Event
    _thread: threading.Thread | None

    def check_now(self) -> Any:  # pragma: no cover - implemented by subclasses
        """Look at the registry and apply what changed."""
        raise NotImplementedError

    def start(self) -> None:
        """Check now and then every ``reload_interval_s`` on a daemon thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (waits for a check in progress up to ``timeout``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                if self.ready is None or self.ready():
                    self.check_now()
            except Exception:
                log.warning("checking the %s champion failed", self.model_name, exc_info=True)
            if self._stop.wait(self.reload_interval_s):
                return


class ChampionWatcher(_Poller):
    """Keeps the log engine on the registry's champion and shadows its challenger."""

    def __init__(
        self,
        registry: ModelRegistry,
        ingest: LogIngest,
        *,
        model_name: str = MODEL_NAME,
        reload_interval_s: float = 30.0,
        shadow: bool = True,
        loader: Loader | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.registry = registry
        self.ready = ready  # False while no registry exists yet: skip the (costly) check
        self.ingest = ingest
        self.model_name = model_name
        self.reload_interval_s = float(reload_interval_s)
        self.shadow = shadow
        self._loader = loader
        self.loaded: dict[str, str | None] = {"champion": None, "challenger": None}
        self.skipped: dict[str, str] = {}  # version -> why the engine cannot run it
        self.warnings: dict[str, str] = {}  # version -> what to know about it
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self, version: str) -> SessionModelPackage:
        if self._loader is not None:
            return self._loader(version)
        from opsloop.learn.detectors.mlflow_io import load_package

        return load_package(self.registry.env, self.model_name, version)

    def _usable(self, version: str) -> SessionModelPackage | None:
        """The package of ``version`` if the engine can run it; else record why not."""
        if version in self.skipped:
            return None
        package = self._load(version)
        if not package.live_ready:
            self.skipped[version] = (
                "its events are names from a template table it does not carry: "
                "live lines cannot be mapped to them"
            )
            log.warning("model %s version %s not loaded: %s", self.model_name, version,
                        self.skipped[version])  # fmt: skip
            return None
        live_key = self.ingest.session_key
        if package.session_key and package.session_key != live_key:
            self.warnings[version] = (
                f"trained on sessions keyed by {package.session_key!r}, the engine groups by "
                f"{live_key!r}"
            )
        return package

    def check_now(self) -> dict[str, str | None]:
        """Compare the aliases with what is loaded and swap what changed; returns the aliases."""
        from opsloop.learn.detectors.event_map import EventMap

        with self._check_lock:
            try:
                champion = self.registry.resolve(self.model_name, "champion")
                challenger = self.registry.resolve(self.model_name, "challenger")
                if not self.ingest.session_key:
                    return {"champion": champion, "challenger": challenger}
                if champion is not None and champion != self.loaded["champion"]:
                    package = self._usable(champion)
                    if package is not None:
                        self.ingest.use_session_model(package.model, champion, EventMap(package))
                        self.loaded["champion"] = champion
                        log.info("session model %s version %s is live", self.model_name, champion)
                wanted = challenger if self.shadow and challenger != champion else None
                if wanted != self.loaded["challenger"]:
                    package = self._usable(wanted) if wanted is not None else None
                    if package is None:
                        self.ingest.use_shadow_model(None, None)
                        self.loaded["challenger"] = None
                    else:
                        self.ingest.use_shadow_model(package.model, wanted, EventMap(package))
                        self.loaded["challenger"] = wanted
                        log.info("session model %s version %s runs in shadow",
                                 self.model_name, wanted)  # fmt: skip
                self.last_error = None
                return {"champion": champion, "challenger": challenger}
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self.last_check = time.time()

    def status(self) -> dict[str, Any]:
        """What is loaded, what was skipped and why, the last check, and the shadow counts."""
        return {
            "model": self.model_name,
            "sessions_enabled": bool(self.ingest.session_key),
            "live_version": self.ingest.session_model_version,
            "loaded": dict(self.loaded),
            "skipped": dict(self.skipped),
            "warnings": dict(self.warnings),
            "last_check": self.last_check,
            "last_error": self.last_error,
            "reload_interval_s": self.reload_interval_s,
            "shadow": self.ingest.shadow_stats(),
        }


SettingsLoader = Callable[[str], dict[str, Any]]


class MetricSettingsWatcher(_Poller):
    """Keeps the metric engine on the alarm settings of the registry's champion.

    A version whose settings the engine refuses (a ``ValueError`` from ``use_settings``) is
    skipped once, with the reason in :meth:`status`; when the alias disappears the last applied
    settings stay.
    """

    thread_name = "opsloop-metric-settings"

    def __init__(
        self,
        registry: ModelRegistry,
        ingest: MetricIngest,
        *,
        model_name: str = METRIC_SETTINGS_MODEL,
        reload_interval_s: float = 30.0,
        loader: SettingsLoader | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.registry = registry
        self.ingest = ingest
        self.model_name = model_name
        self.reload_interval_s = float(reload_interval_s)
        self.ready = ready  # False while no registry exists yet: skip the (costly) check
        self._loader = loader
        self.loaded: str | None = None
        self.skipped: dict[str, str] = {}  # version -> why the engine cannot run it
        self.last_check: float | None = None
        self.last_error: str | None = None
        self._check_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _load(self, version: str) -> dict[str, Any]:
        if self._loader is not None:
            return self._loader(version)
        from opsloop.learn.detectors.metric_settings import load_settings

        return load_settings(self.registry.env, self.model_name, version)

    def check_now(self) -> str | None:
        """Apply the champion's settings if it changed since the last check; returns it."""
        with self._check_lock:
            try:
                champion = self.registry.resolve(self.model_name, "champion")
                if (
                    champion is not None
                    and champion != self.loaded
                    and champion not in self.skipped
                ):
                    settings = self._load(champion)["settings"]
                    try:
                        changed = self.ingest.use_settings(settings, champion)
                    except ValueError as exc:
                        self.skipped[champion] = str(exc)
                        log.warning("metric settings %s version %s not applied: %s",
                                    self.model_name, champion, exc)  # fmt: skip
                    else:
                        self.loaded = champion
                        log.info("metric settings %s version %s are live (%d detectors changed)",
                                 self.model_name, champion, changed)  # fmt: skip
                self.last_error = None
                return champion
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                raise
            finally:
                self.last_check = time.time()

    def status(self) -> dict[str, Any]:
        """The live version and families, what was skipped and why, the last check."""
        return {
            "model": self.model_name,
            "live_version": self.ingest.settings_version,
            "loaded": self.loaded,
            "families": {f: dict(s) for f, s in self.ingest.settings_by_family.items()},
            "skipped": dict(self.skipped),
            "last_check": self.last_check,
            "last_error": self.last_error,
            "reload_interval_s": self.reload_interval_s,
        }
