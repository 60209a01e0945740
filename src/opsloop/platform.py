"""The running platform: settings plus the stores and services built on them.

One object that the API, dashboard and CLI share, so each capability adds its own service here
instead of opening stores on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsloop.config import Settings
from opsloop.home import prepare_home, session_key
from opsloop.store.state import AuditLog, StateDB, TokenService, open_state
from opsloop.store.telemetry import TelemetryStore
from opsloop.store.telemetry.logs import LogTable

if TYPE_CHECKING:
    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.learn.registry import AliasMove, ModelRegistry
    from opsloop.learn.serving import ModelGateway
    from opsloop.services.detector_models import ChampionWatcher, MetricSettingsWatcher
    from opsloop.services.incidents import IncidentService
    from opsloop.services.log_ingest import LogIngest
    from opsloop.services.metric_ingest import MetricIngest
    from opsloop.services.model_monitoring import ModelMonitoring
    from opsloop.services.pipelines import PipelineService
    from opsloop.services.runbooks import RunbookService
    from opsloop.store.telemetry.predictions import PredictionTable

log = logging.getLogger("opsloop.platform")


@dataclass
class Platform:
    """Stores and services of one opsloop instance."""

    settings: Settings
    state: StateDB
    tokens: TokenService
    audit: AuditLog
    telemetry: TelemetryStore
    session_key: bytes
    _logs: LogIngest | None = field(default=None, repr=False)
    _metrics: MetricIngest | None = field(default=None, repr=False)
    _incidents: IncidentService | None = field(default=None, repr=False)
    _runbooks: RunbookService | None = field(default=None, repr=False)
    _pipelines: PipelineService | None = field(default=None, repr=False)
    _registry: ModelRegistry | None = field(default=None, repr=False)
    _predictions: PredictionTable | None = field(default=None, repr=False)
    _detector_watcher: ChampionWatcher | None = field(default=None, repr=False)
    _metric_settings_watcher: MetricSettingsWatcher | None = field(default=None, repr=False)
    _monitoring: ModelMonitoring | None = field(default=None, repr=False)
    _serving: ModelGateway | None = field(default=None, repr=False)

    @property
    def serving(self) -> ModelGateway:
        """The model gateway (registered MLflow models by alias), built on first use."""
        if self._serving is None:
            from opsloop.learn.serving import ModelGateway, ModelLoader, ModelPolicy

            monitoring = self.monitoring
            policies = {
                name: ModelPolicy(**cfg.model_dump())
                for name, cfg in self.settings.models.serving.items()
            }
            self._serving = ModelGateway(
                ModelLoader.from_env(self.mlflow),
                policies=policies,
                poll_interval_s=self.settings.models.reload_interval_s,
                on_prediction=monitoring.on_prediction,
                on_label=lambda model, request_id, label: monitoring.on_labels(
                    model, [(request_id, label)]
                ),
            )
        return self._serving

    def bind_detector_services(self) -> None:
        """Built-in detector pipelines reach this platform's telemetry and audited registry."""
        from opsloop.learn.detectors.bindings import (
            DetectorServices,
            TelemetrySource,
            bind_services,
        )

        telemetry = TelemetrySource(
            LogTable(self.telemetry), self.state, lambda tid: self.logs.resolve(tid)
        )
        bind_services("platform", DetectorServices(registry=self.registry, telemetry=telemetry))

    @property
    def detector_models(self) -> ChampionWatcher:
        """Loads the champion of opsloop's own detectors into the live engines."""
        if self._detector_watcher is None:
            from opsloop.services.detector_models import ChampionWatcher

            env = self.mlflow
            self._detector_watcher = ChampionWatcher(
                self.registry,
                self.logs,
                reload_interval_s=self.settings.models.reload_interval_s,
                ready=lambda: not env.embedded or env.db_path.exists(),
            )
        return self._detector_watcher

    @property
    def metric_settings_models(self) -> MetricSettingsWatcher:
        """Keeps the metric engine on the champion's alarm settings per series family."""
        if self._metric_settings_watcher is None:
            from opsloop.services.detector_models import MetricSettingsWatcher

            env = self.mlflow
            self._metric_settings_watcher = MetricSettingsWatcher(
                self.registry,
                self.metrics,
                reload_interval_s=self.settings.models.reload_interval_s,
                ready=lambda: not env.embedded or env.db_path.exists(),
            )
        return self._metric_settings_watcher

    @property
    def monitoring(self) -> ModelMonitoring:
        """Served models' predictions, labels, drift and performance."""
        if self._monitoring is None:
            from opsloop.services.model_monitoring import (
                ModelMonitoring,
                load_reference_profile,
            )

            env = self.mlflow
            self._monitoring = ModelMonitoring(
                self.predictions,
                metrics_sink=lambda samples: self.metrics.ingest(samples),
                anomalies_sink=self._model_anomalies,
                profile_loader=lambda model, version: load_reference_profile(env, model, version),
                window_size=self.settings.models.monitor_window,
            )
        return self._monitoring

    @property
    def predictions(self) -> PredictionTable:
        """Served models' predictions and delayed labels (telemetry store)."""
        if self._predictions is None:
            from opsloop.store.telemetry.predictions import PredictionTable

            self._predictions = PredictionTable(self.telemetry)
        return self._predictions

    @property
    def predictions_opened(self) -> bool:
        """Whether anything used the predictions table in this process."""
        return self._predictions is not None

    @property
    def mlflow(self) -> MlflowEnv:
        """Where MLflow tracking and registry live (embedded under the home by default)."""
        from opsloop.learn.mlflow_env import MlflowEnv

        return MlflowEnv(self.settings.home, self.settings.mlflow_uri)

    @property
    def pipelines(self) -> PipelineService:
        """Data and training pipelines: catalogue, runs, schedules."""
        if self._pipelines is None:
            from opsloop.services.pipelines import PipelineService

            self._pipelines = PipelineService(self.settings, self.state, self.mlflow)
            self.bind_detector_services()
        return self._pipelines

    @property
    def registry(self) -> ModelRegistry:
        """MLflow's model registry with audited promote/rollback."""
        if self._registry is None:
            from opsloop.learn.registry import ModelRegistry

            self._registry = ModelRegistry(self.mlflow, self._audit_alias_move)
        return self._registry

    def _model_anomalies(self, anomalies: list) -> None:
        """Drift findings are anomaly records like any detector's, then incidents."""
        LogTable(self.telemetry).append_anomalies(anomalies)
        self._to_incidents(anomalies)

    def _audit_alias_move(self, move: AliasMove) -> None:
        if self._serving is not None:
            self._serving.refresh_soon(move.model)  # serve the new version without waiting
        self.audit.record(
            move.actor,
            f"model.{move.action}",
            target=f"{move.model}@{move.alias}",
            note=move.reason,
            version=move.version,
            previous=move.previous,
        )

    @property
    def runbooks(self) -> RunbookService:
        """Runbook automation (files, engine, runs, triggers)."""
        if self._runbooks is None:
            from opsloop.services.runbooks import RunbookService

            self._runbooks = RunbookService(
                self.settings, self.state, self.incidents, learn=_LearnActions(self)
            )
        return self._runbooks

    @property
    def incidents(self) -> IncidentService:
        """The incident engine (correlation, lifecycle, silences, notifications)."""
        if self._incidents is None:
            from opsloop.services.incidents import IncidentService

            self._incidents = IncidentService(
                self.state, self.settings.incidents, self.settings.notify
            )
        return self._incidents

    def _to_incidents(self, anomalies: list) -> None:
        from opsloop.act.incidents import from_anomaly

        try:
            results = self.incidents.intake_anomalies(anomalies)
        except Exception:
            log.exception("anomalies could not be turned into alerts")
            return
        try:
            if self.runbooks.runbooks:
                where = {r["fingerprint"]: r["incident_id"] for r in results}
                ids = [where.get(from_anomaly(a).fingerprint) for a in anomalies]
                self.runbooks.on_anomalies(anomalies, ids)
        except Exception:
            log.exception("runbook triggers failed")

    @property
    def metrics(self) -> MetricIngest:
        """The metric pipeline (per-series detectors and forecasts), loaded on first use."""
        if self._metrics is None:
            from opsloop.services.metric_ingest import MetricIngest

            cfg = self.settings.metrics
            self._metrics = MetricIngest(
                self.telemetry,
                self.settings.home / "metric_state.json",
                capacity=[(c.match, c.threshold, c.direction) for c in cfg.capacity],
                horizon_s=cfg.forecast_horizon_s,
                detect_exclude=cfg.detect_exclude,
                max_series=cfg.max_series,
            )
            self._metrics.on_anomalies = self._to_incidents
        return self._metrics

    @property
    def logs(self) -> LogIngest:
        """The log pipeline (template miner and detectors), loaded on first use."""
        if self._logs is None:
            from opsloop.services.log_ingest import LogIngest

            cfg = self.settings.logs
            self._logs = LogIngest(
                LogTable(self.telemetry),
                self.settings.home / "log_state.json",
                cfg.format,
                session_key=cfg.session_key,
                session_idle_s=cfg.session_idle_s,
                session_min_train=cfg.session_min_train,
            )
            self._logs.on_anomalies = self._to_incidents
        return self._logs

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        """Prepare the home and open both stores (migrating the state schema)."""
        prepare_home(settings.home)
        state = open_state(settings.effective_state_url)
        try:
            telemetry = TelemetryStore(settings.telemetry_path)
        except Exception:
            state.close()
            raise
        return cls(
            settings=settings,
            state=state,
            tokens=TokenService(state),
            audit=AuditLog(state),
            telemetry=telemetry,
            session_key=session_key(settings.home),
        )

    def close(self) -> None:
        """Flush and close the stores."""
        if self._detector_watcher is not None:
            self._detector_watcher.stop()
        if self._metric_settings_watcher is not None:
            self._metric_settings_watcher.stop()
        if self._serving is not None:
            try:
                self._serving.close()
            except Exception:
                log.exception("could not stop the model gateway")
        if self._monitoring is not None:
            try:
                self._monitoring.flush()
            except Exception:
                log.exception("could not store the last predictions")
        if self._pipelines is not None:
            try:
                self._pipelines.close()
            except Exception:
                log.exception("could not stop the pipelines")
            from opsloop.learn.detectors.bindings import unbind_services

            unbind_services("platform")
        try:
            if self._incidents is not None:
                self._incidents.flush()
        except Exception:
            log.exception("could not snapshot the incidents")
        for name, part in (("log", self._logs), ("metric", self._metrics)):
            try:
                if part is not None:
                    part.snapshot()
            except Exception:
                log.exception("could not snapshot the %s state", name)
        try:
            self.telemetry.close()
        finally:
            self.state.close()


class _LearnActions:
    """What runbook ``pipeline`` and ``model`` steps do on this platform."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    def run_pipeline(
        self, name: str, params: dict, wait: bool, timeout_s: float, trigger: str
    ) -> dict:
        """Start a run; with ``wait``, block until it ends (or ``timeout_s``)."""
        svc = self.platform.pipelines
        run_id = svc.start(name, params, trigger=trigger)
        self.platform.audit.record(trigger, "pipeline.run", target=name, run=run_id)
        if not wait:
            return {"run_id": run_id, "run_status": "started"}
        record = svc.wait(run_id, timeout=timeout_s)
        return {"run_id": run_id, "run_status": record.status.value if record else "unknown"}

    def move_model(
        self, action: str, name: str, alias: str, version: str | None, actor: str, reason: str
    ) -> dict:
        """Promote or roll back through the audited registry."""
        reg = self.platform.registry
        if action == "rollback":
            move = reg.rollback(name, alias, actor=actor, reason=reason)
        else:
            move = reg.promote(name, str(version), alias, actor=actor, reason=reason)
        return {"version": move.version, "previous": move.previous}
