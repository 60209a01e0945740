"""The ``opsloop`` command.

Start-up stays fast: only typer is imported here; every command imports what it uses.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from opsloop.config import Settings

app = typer.Typer(
    name="opsloop",
    help="AIOps and MLOps as one loop: observe, detect, act, learn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")


def _add_command_groups() -> None:
    from opsloop.commands import bench, logs, metrics, models, pipelines, runbooks, simulate

    app.add_typer(logs.app, name="logs")
    app.add_typer(pipelines.app, name="pipelines")
    app.add_typer(models.app, name="models")
    app.add_typer(metrics.app, name="metrics")
    app.add_typer(bench.app, name="bench")
    app.add_typer(runbooks.app, name="runbooks")
    app.add_typer(simulate.app, name="simulate")


_add_command_groups()

HomeOpt = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Data home (default ./.opsloop, env OPSLOOP_HOME).", show_default=False
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Config file (default ./opsloop.toml, env OPSLOOP_CONFIG).",
        show_default=False,
    ),
]


class CliError(Exception):
    """An error to show as one line, exiting non-zero."""


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` to stderr and exit with ``code``."""
    from opsloop.logsetup import redact

    sys.stderr.write(f"error: {redact(message)}\n")
    raise typer.Exit(code)


def _settings(config: Path | None, **overrides: object) -> Settings:
    from opsloop.config import ConfigError, load_settings

    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        fail(str(exc))


def _known_errors() -> tuple[type[Exception], ...]:
    from opsloop.config import ConfigError
    from opsloop.home import HomeError
    from opsloop.netcheck import PortInUse
    from opsloop.simulate.scenario import ScenarioError
    from opsloop.store.state.db import StateError
    from opsloop.store.telemetry.duck import TelemetryError

    return (ConfigError, HomeError, StateError, TelemetryError, CliError, PortInUse, ScenarioError)


@app.command()
def version() -> None:
    """Print the version."""
    from opsloop import __version__

    typer.echo(__version__)


@app.command()
def up(
    home: HomeOpt = None,
    config: ConfigOpt = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Port (default 8700, env OPSLOOP_PORT).", show_default=False),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Bind address (default 127.0.0.1).", show_default=False),
    ] = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="Also run a simulated estate with faults (logs, metrics, a served model) "
            "against this server, to see the whole loop in a few minutes.",
        ),
    ] = False,
    demo_scenario: Annotated[
        str,
        typer.Option("--demo-scenario", help="Scenario of --demo: demo, quick or a YAML file."),
    ] = "demo",
) -> None:
    """Start the platform: API and dashboard, host monitoring, background services."""
    settings = _settings(config, home=home, port=port, host=host)
    try:
        _serve(settings, demo=demo, demo_scenario=demo_scenario)
    except _known_errors() as exc:
        fail(str(exc))


def _demo_settings(settings: Settings) -> tuple[Settings, int]:
    """The demo's settings: a syslog listener on a free UDP port for the simulated hosts."""
    import socket

    from opsloop.demo.files import install_demo_files

    port = settings.logs.syslog_udp_port
    if port is None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    logs = settings.logs.model_copy(update={"syslog_udp_port": port})
    # the demo's model gets ~40 requests a simulated minute: judge drift every 100 of them
    models = settings.models.model_copy(
        update={"monitor_window": min(settings.models.monitor_window, 100)}
    )
    settings = settings.model_copy(update={"logs": logs, "models": models})
    settings.home.mkdir(parents=True, exist_ok=True)
    install_demo_files(settings.home)
    return settings, port


def _demo_token(platform: object) -> str:
    """A fresh operator token for the simulator (earlier demo tokens are revoked)."""
    tokens = platform.tokens  # type: ignore[attr-defined]
    for info in tokens.list():
        if info.name == "demo-simulator" and info.revoked_at is None:
            tokens.revoke(info.id)
    plaintext, _ = tokens.create("demo-simulator", "operator")
    return plaintext


def _serve(settings: Settings, demo: bool = False, demo_scenario: str = "demo") -> None:
    import logging
    import signal

    import uvicorn

    from opsloop.api.app import create_app
    from opsloop.home import ADMIN_TOKEN_FILE, write_private
    from opsloop.logsetup import configure_logging
    from opsloop.netcheck import ensure_port_free
    from opsloop.platform import Platform

    configure_logging(settings.log_level, settings.log_format)
    log = logging.getLogger("opsloop")
    ensure_port_free(settings.host, settings.port)
    syslog_port = 0
    if demo:
        from opsloop.simulate import load_scenario

        load_scenario(demo_scenario)  # a bad scenario fails here, with file:line
        settings, syslog_port = _demo_settings(settings)
    platform = Platform.open(settings)
    driver = None
    try:
        if not platform.tokens.list():
            plaintext, info = platform.tokens.create("admin", "admin")
            path = settings.home / ADMIN_TOKEN_FILE
            write_private(path, plaintext + "\n")
            platform.audit.record("system", "token.create", target=info.id, role="admin")
            sys.stderr.write(
                f"opsloop: created the first admin token; it is in {path.resolve()} (mode 0600)\n"
            )
        url = f"http://{settings.host}:{settings.port}"
        sys.stderr.write(f"opsloop: serving API and dashboard on {url}  (Ctrl-C stops)\n")
        if demo:
            from opsloop.demo.driver import DemoDriver

            local = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host  # noqa: S104
            driver = DemoDriver(
                platform, f"http://{local}:{settings.port}", _demo_token(platform),
                scenario=demo_scenario, syslog_port=syslog_port,
            )  # fmt: skip
            driver.start()
            sys.stderr.write(
                "opsloop: demo on - a simulated estate (web1, db1, batch1, model churn) sends "
                "logs, metrics and predictions; six faults follow within a few minutes\n"
            )
        log.info("starting", extra={"fields": {"url": url, "home": str(settings.home)}})
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(platform),
                host=settings.host,
                port=settings.port,
                log_config=None,
                access_log=True,
                server_header=False,
                timeout_graceful_shutdown=10,
            )
        )
        # uvicorn re-raises the stop signal once it has shut down gracefully; a no-op handler
        # underneath makes that re-raise harmless, so a SIGTERM/SIGINT stop exits 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        server.run()
        if not server.started:
            raise CliError(f"server could not start on {settings.host}:{settings.port}")
    finally:
        if driver is not None:
            driver.stop()
        platform.close()
        log.info("stopped")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the token.")],
    role: Annotated[str, typer.Option("--role", help="viewer, operator or admin.")] = "viewer",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from opsloop.roles import Role

    if role not in Role.__members__:
        fail(f"unknown role {role!r}; use viewer, operator or admin")
    settings = _settings(config, home=home)
    with _state(settings) as (tokens, audit):
        try:
            plaintext, info = tokens.create(name, role)
        except ValueError as exc:
            fail(str(exc))
        audit.record(_cli_actor(), "token.create", target=info.id, role=role)
    sys.stderr.write(f"Created token {info.id} '{info.name}' with role {role}. It is shown once:\n")
    typer.echo(plaintext)


@token_app.command("list")
def token_list(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """List tokens (never their secrets)."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings(config, home=home)
    with _state(settings) as (tokens, _):
        rows = tokens.list()
    table = Table("id", "name", "role", "created", "last used", "revoked")
    for t in rows:
        table.add_row(
            t.id, t.name, t.role.value, f"{t.created_at:%Y-%m-%d %H:%M}",
            f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "—",
            f"{t.revoked_at:%Y-%m-%d %H:%M}" if t.revoked_at else "",
        )  # fmt: skip
    Console().print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see 'opsloop token list').")],
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke a token; its dashboard sessions end too."""
    settings = _settings(config, home=home)
    with _state(settings) as (tokens, audit):
        if not tokens.revoke(token_id):
            fail(f"no active token with id {token_id!r}", code=1)
        audit.record(_cli_actor(), "token.revoke", target=token_id)
    typer.echo(f"revoked {token_id}")


@app.command()
def env(
    home: HomeOpt = None,
    config: ConfigOpt = None,
    shell: Annotated[
        bool, typer.Option("--shell", help="Print `export` lines for eval in a shell.")
    ] = False,
) -> None:
    """Where MLflow tracking and the model registry are (train with plain `mlflow` there)."""
    import shlex

    from opsloop.learn.mlflow_env import MlflowEnv

    settings = _settings(config, home=home)
    menv = MlflowEnv(settings.home, settings.mlflow_uri)
    values = {**menv.environ(), "OPSLOOP_HOME": str(settings.home.resolve())}
    for key, value in values.items():
        typer.echo(f"export {key}={shlex.quote(value)}" if shell else f"{key}={value}")
    if not shell and menv.embedded:
        typer.echo(f"# artifacts: {menv.artifact_root}")


@app.command("mlflow-ui")
def mlflow_ui(
    home: HomeOpt = None,
    config: ConfigOpt = None,
    port: Annotated[int, typer.Option("--port", help="Port of MLflow's UI.")] = 5000,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Open MLflow's own UI on opsloop's tracking store and registry."""
    import subprocess

    from opsloop.learn.mlflow_env import MlflowEnv

    settings = _settings(config, home=home)
    menv = MlflowEnv(settings.home, settings.mlflow_uri)
    if not menv.embedded:
        fail(f"MLflow runs elsewhere ({menv.tracking_uri}): open its own UI")
    menv.ensure()
    typer.echo(f"MLflow UI on http://{host}:{port} (store {menv.tracking_uri}); Ctrl-C stops it")
    try:
        raise typer.Exit(subprocess.call(menv.ui_argv(host, port)))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@app.command("serve-models")
def serve_models_cmd(
    models: Annotated[
        list[str], typer.Argument(help="Registered models; the first is also at /invocations.")
    ],
    home: HomeOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port.")] = 5001,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="No token (local use, benchmarks).")
    ] = False,
    poll: Annotated[
        float, typer.Option("--poll-interval", help="Seconds between registry checks.")
    ] = 10.0,
) -> None:
    """Serve registered MLflow models by alias (MLflow /invocations + /api/v1/models/NAME/predict).

    Requests need `Authorization: Bearer $OPSLOOP_SERVING_TOKEN` unless --no-auth.
    """
    from opsloop.learn.mlflow_env import MlflowEnv
    from opsloop.learn.serving import serve_models

    settings = _settings(config, home=home)
    menv = MlflowEnv(settings.home, settings.mlflow_uri)
    menv.ensure()
    try:
        serve_models(
            menv.tracking_uri, host, port, workers, models, no_auth=no_auth,
            poll_interval_s=poll, log_level=settings.log_level,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))


class _state:
    """Open the state store for a CLI command (not the telemetry store the server holds)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> tuple:
        from opsloop.home import prepare_home
        from opsloop.store.state import AuditLog, TokenService, open_state

        try:
            prepare_home(self.settings.home)
            self.db = open_state(self.settings.effective_state_url)
        except _known_errors() as exc:
            fail(str(exc))
        return TokenService(self.db), AuditLog(self.db)

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def _cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def main() -> None:
    """Entry point of the ``opsloop`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
