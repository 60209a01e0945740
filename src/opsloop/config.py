"""One settings object, read from ``opsloop.toml`` and ``OPSLOOP_*`` environment variables.

Precedence (highest first): explicit overrides (CLI flags) > environment > ``opsloop.toml`` >
defaults. Unknown keys in the file are an error, never silently ignored, so a typo cannot
quietly turn a setting off.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

CONFIG_FILE_ENV = "OPSLOOP_CONFIG"
DEFAULT_CONFIG_FILE = "opsloop.toml"


_FILE_DATA: ContextVar[dict[str, Any]] = ContextVar("opsloop_config_file_data", default={})  # noqa: B039


class _FileSource(PydanticBaseSettingsSource):
    """Settings source for the parsed ``opsloop.toml`` (lowest precedence but defaults)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return _FILE_DATA.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_DATA.get())


class ConfigError(Exception):
    """A configuration problem, with a one-line message meant for a person."""


class CollectorSettings(BaseModel):
    """Host metrics collector."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    interval_s: float = Field(10.0, gt=0.5, le=3600, description="Seconds between samples.")


class LogSettings(BaseModel):
    """Log ingest: header format, files to follow, syslog listeners."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field(
        "auto",
        description="Header format: 'auto', 'raw', a built-in name, or LogPAI notation "
        "such as '<Date> <Time> <Level> <Component>: <Content>'.",
    )
    files: list[str] = Field(default_factory=list, description="Files or globs to follow.")
    from_beginning: bool = Field(
        False, description="Read files found at first start from their beginning (else the end)."
    )
    syslog_host: str = Field("127.0.0.1", description="Address of the syslog listeners.")
    syslog_udp_port: int | None = Field(
        None, ge=0, le=65535, description="UDP syslog; off if unset."
    )
    syslog_tcp_port: int | None = Field(
        None, ge=0, le=65535, description="TCP syslog; off if unset."
    )
    snapshot_interval_s: float = Field(
        30.0, gt=0, description="Seconds between snapshots of the learned template state."
    )
    stdin: bool = Field(False, description="Also read log lines from standard input.")
    session_key: str | None = Field(
        None,
        description=r"Regex whose match groups lines into sessions (e.g. 'blk_-?\d+' or "
        r"'req-[0-9a-f]+'); anomalous sessions become anomalies. Off if unset.",
    )
    session_idle_s: float = Field(
        300.0, gt=0, description="A session closes after this many seconds without lines."
    )
    session_min_train: int = Field(
        200, ge=10, description="Sessions learned before session anomalies are reported."
    )

    @field_validator("session_key")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        if v:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regex: {exc}") from None
        return v or None


class ScrapeTargetSettings(BaseModel):
    """A Prometheus endpoint to scrape."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="http(s) URL of the exposition page, e.g. http://host:9100/metrics."
    )
    name: str = Field("", description="Job name (default 'scrape').")
    interval_s: float = Field(15.0, gt=0.1, description="Seconds between scrapes.")
    timeout_s: float = Field(10.0, gt=0, description="Seconds before a scrape is abandoned.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels added to samples.")

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v


class CapacityRule(BaseModel):
    """Series that can run out: forecast when they cross ``threshold``."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(description="Regex on the metric name, e.g. '^host_disk_percent$'.")
    threshold: float = Field(description="The value at which the resource is exhausted.")
    direction: Literal["up", "down"] = Field(
        "up",
        description="'up': exhausted when the value rises to the threshold (disk used, queue "
        "depth); 'down': when it falls to it (free bytes, certificate days left).",
    )

    @field_validator("match")
    @classmethod
    def _valid(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regex: {exc}") from None
        return v


class MetricSettings(BaseModel):
    """Metric ingest, detection and forecasting."""

    model_config = ConfigDict(extra="forbid")

    scrape: list[ScrapeTargetSettings] = Field(default_factory=list)
    capacity: list[CapacityRule] = Field(
        default_factory=lambda: [
            CapacityRule(match="^host_disk_percent$", threshold=95.0),
            CapacityRule(match="^host_memory_percent$", threshold=95.0),
            CapacityRule(match="^host_swap_percent$", threshold=90.0),
        ],
        description="Capacity-like series and their exhaustion thresholds.",
    )
    forecast_horizon_s: float = Field(
        7 * 86400.0, gt=0, description="Warn when exhaustion is forecast within this many seconds."
    )
    detect_exclude: str = Field(
        r"(_bucket|_created|_total|_count|_sum)$|^scrape_",
        description="Regex of metric names that get no anomaly detector.",
    )
    max_series: int = Field(
        10_000, ge=1, description="Series with a live detector; least recently seen are dropped."
    )
    snapshot_interval_s: float = Field(60.0, gt=0, description="Seconds between state snapshots.")


class IncidentSettings(BaseModel):
    """How alerts and anomalies become incidents, and when they are notified about."""

    model_config = ConfigDict(extra="forbid")

    group_by: list[str] = Field(
        default_factory=lambda: ["service", "host"],
        description="Alerts sharing these label values join one incident.",
    )
    group_window_s: float = Field(600.0, gt=0, description="How long a group stays joinable.")
    cooccur_window_s: float = Field(
        300.0, gt=0, description="Signals on the same host this close in time are joined."
    )
    stale_after_s: float = Field(
        300.0, gt=0, description="An opsloop anomaly alert ends this long after its last signal."
    )
    auto_resolve_quiet_s: float = Field(
        300.0, gt=0, description="Resolve an incident this long after all its alerts ended."
    )
    min_anomaly_severity: Literal["info", "warning", "error", "critical"] = Field(
        "warning", description="Anomalies below this severity do not become alerts."
    )
    group_wait_s: float = Field(30.0, ge=0, description="Wait before the first notification.")
    group_interval_s: float = Field(300.0, gt=0, description="Wait between updates of a group.")
    repeat_interval_s: float = Field(14400.0, gt=0, description="Re-notify an unchanged incident.")
    resolved_retention_days: int = Field(90, ge=1, description="Days resolved incidents are kept.")
    external_url: str = Field(
        "", description="Base URL of the dashboard used in notification links."
    )
    inhibit: list[dict[str, Any]] | None = Field(
        None, description="Inhibition rules (Alertmanager style); default: critical mutes lower."
    )


class NotifySettings(BaseModel):
    """Receivers and the routing tree of notifications."""

    model_config = ConfigDict(extra="forbid")

    receivers: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="name -> {type = webhook|slack|email, ...}."
    )
    route: dict[str, Any] | None = Field(
        None, description="Routing tree (Alertmanager style); default: every receiver."
    )

    @model_validator(mode="after")
    def _check(self) -> NotifySettings:
        from opsloop.act.notify import load_route, receivers_from_config

        try:
            receivers = receivers_from_config(self.receivers, path="notify.receivers")
            if self.route is not None:
                load_route(self.route, set(receivers), path="notify.route")
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return self


class RunbookSettings(BaseModel):
    """Runbook automation."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=list, description="Extra runbook folders (besides <home>/runbooks)."
    )
    secrets_file: str | None = Field(
        None, description="TOML/JSON file of secrets for ${secret:NAME} (must be mode 0600)."
    )
    python_modules: list[str] = Field(
        default_factory=list, description="Modules whose functions python steps may call."
    )
    enabled: bool = Field(True, description="False engages the kill switch at start.")


class PipelineSchedule(BaseModel):
    """Run a pipeline on a cron expression or every ``interval_s`` seconds."""

    model_config = ConfigDict(extra="forbid")

    pipeline: str = Field(description="Name of the pipeline to run.")
    cron: str | None = Field(
        None, description="Five-field cron expression (UTC), e.g. '0 3 * * *'."
    )
    interval_s: float | None = Field(None, gt=0, description="Seconds between runs.")
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Step param overrides: {step: {param: value}}."
    )
    missed: Literal["skip", "run_once"] = Field(
        "run_once",
        description="After downtime: 'run_once' catches up with one run, 'skip' waits for the "
        "next slot.",
    )

    @model_validator(mode="after")
    def _one_trigger(self) -> PipelineSchedule:
        if (self.cron is None) == (self.interval_s is None):
            raise ValueError("set exactly one of 'cron' and 'interval_s'")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"cron {self.cron!r}: {exc}") from None
        return self


class PipelineSettings(BaseModel):
    """Data and training pipelines."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=list,
        description="Extra folders of pipeline YAML files (besides <home>/pipelines).",
    )
    max_parallel: int = Field(4, ge=1, le=64, description="Steps run at once within a run.")
    executor: Literal["thread", "process"] = Field(
        "thread", description="Where steps run: threads of the server or a process pool."
    )
    schedules: list[PipelineSchedule] = Field(default_factory=list)


class ServingPolicySettings(BaseModel):
    """How one registered model is served by the gateway (``[models.serving.NAME]``)."""

    model_config = ConfigDict(extra="forbid")

    alias: str = Field("champion", description="The alias that answers.")
    challenger_alias: str = Field("challenger", description="The alias of canary and shadow.")
    canary_percent: float = Field(
        0.0, ge=0, le=100, description="Share of requests the challenger answers."
    )
    shadow: bool = Field(False, description="Also score every request with the challenger.")
    batching: bool = Field(True, description="Adaptive micro-batching of concurrent requests.")
    max_batch_size: int = Field(64, ge=1, description="Rows per batched predict call.")
    max_wait_ms: float = Field(2.0, ge=0, description="Longest wait to fill a batch.")
    max_concurrency: int = Field(256, ge=1, description="Requests in flight (429 above).")
    timeout_s: float = Field(10.0, gt=0, description="Per-request limit (504 above).")
    log_sample_rate: float = Field(
        1.0, ge=0, le=1, description="Share of predictions logged for monitoring."
    )


class ModelSettings(BaseModel):
    """The model lifecycle: promotion of opsloop's own detectors, serving, monitoring."""

    model_config = ConfigDict(extra="forbid")

    promote_margin: float = Field(
        0.01,
        ge=0,
        description="A challenger replaces the champion if its score is this much higher.",
    )
    reload_interval_s: float = Field(
        30.0, gt=0, description="Seconds between checks for a new champion (detectors, serving)."
    )
    monitor_window: int = Field(
        500, ge=20, le=1_000_000, description="Predictions per drift/performance window."
    )
    serving: dict[str, ServingPolicySettings] = Field(
        default_factory=dict,
        description="Serving policy per registered model; others get the defaults.",
    )


class RetentionSettings(BaseModel):
    """How long telemetry is kept; older day partitions are dropped on schedule."""

    model_config = ConfigDict(extra="forbid")

    metrics_days: int = Field(30, ge=1, description="Days of metric samples kept.")
    metrics_raw_days: int = Field(
        7, ge=1, description="Days kept at full resolution; older days become 5-minute averages."
    )
    logs_days: int = Field(14, ge=1, description="Days of log lines kept.")
    predictions_days: int = Field(
        30, ge=1, description="Days of served models' predictions and labels kept."
    )
    check_interval_s: float = Field(3600.0, gt=0, description="Seconds between retention sweeps.")


class Settings(BaseSettings):
    """All of opsloop's settings.

    Every field can be set in ``opsloop.toml`` (nested tables for sections) or through the
    environment as ``OPSLOOP_<FIELD>`` (``OPSLOOP_COLLECTOR__INTERVAL_S`` for nested ones).
    """

    model_config = SettingsConfigDict(
        env_prefix="OPSLOOP_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(Path(".opsloop"), description="Data home: stores, tokens, keys.")
    host: str = Field("127.0.0.1", description="Address the server binds to.")
    port: int = Field(8700, ge=0, le=65535, description="Port of the API and dashboard.")
    state_url: str | None = Field(
        None, description="SQLAlchemy URL of the state store; default SQLite under the home."
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above)."
    )
    session_hours: float = Field(12.0, gt=0, description="Lifetime of a dashboard session.")
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking/registry URI to use instead of the embedded "
        "<home>/mlflow.db (e.g. http://mlflow:5000).",
    )
    collector: CollectorSettings = CollectorSettings()
    logs: LogSettings = LogSettings()
    metrics: MetricSettings = MetricSettings()
    incidents: IncidentSettings = IncidentSettings()
    notify: NotifySettings = NotifySettings()
    runbooks: RunbookSettings = RunbookSettings()
    retention: RetentionSettings = RetentionSettings()
    pipelines: PipelineSettings = PipelineSettings()
    models: ModelSettings = ModelSettings()

    @field_validator("home", mode="before")
    @classmethod
    def _expand_home(cls, v: Any) -> Any:
        return Path(v).expanduser() if isinstance(v, str | Path) else v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))

    @property
    def effective_state_url(self) -> str:
        """The state store URL: ``state_url`` or a SQLite file under the home."""
        if self.state_url:
            return self.state_url
        return f"sqlite:///{(self.home / 'state.db').resolve()}"

    @property
    def telemetry_path(self) -> Path:
        """The DuckDB file holding logs, metric samples and predictions."""
        return self.home / "telemetry.duckdb"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _describe(exc: ValidationError, origin: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown setting '{loc}'")
        else:
            parts.append(f"'{loc}': {err['msg']}")
    return f"{origin}: " + "; ".join(parts)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from the config file, the environment and explicit overrides.

    ``config_file`` defaults to ``$OPSLOOP_CONFIG`` or ``./opsloop.toml`` when it exists.
    Overrides whose value is ``None`` are ignored (an unset CLI flag).
    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    explicit = config_file is not None or bool(os.environ.get(CONFIG_FILE_ENV))
    path = Path(config_file or os.environ.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    file_data: dict[str, Any] = {}
    if path.is_file():
        file_data = _read_toml(path)
        _validate_file_keys(file_data, path)
    elif explicit:
        raise ConfigError(f"{path}: config file not found")
    token = _FILE_DATA.set(file_data)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        origin = str(path) if file_data else "configuration"
        raise ConfigError(_describe(exc, origin)) from None
    finally:
        _FILE_DATA.reset(token)


def _validate_file_keys(data: dict[str, Any], path: Path) -> None:
    for key, value in data.items():
        field = Settings.model_fields.get(key)
        if field is None:
            raise ConfigError(f"{path}: unknown setting '{key}'")
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{key}' must be a table ([{key}])")
            for sub in value:
                if sub not in section.model_fields:
                    raise ConfigError(f"{path}: unknown setting '{key}.{sub}'")
