"""Step executors: shell (argv, no shell), HTTP, Python entrypoints and waits.

Each returns a :class:`StepResult` holding *raw* output (the engine redacts before storing and
uses the raw values for ``${steps.<id>.*}``). None of them raises for a failing step.

Shell
    ``subprocess.Popen(argv, shell=False)`` - the argv list goes to ``execve`` unchanged, so an
    argument is one argument whatever it contains. The child gets its own session and process
    group, stdin from ``/dev/null``, a minimal environment (``PATH``, ``HOME``, ``LANG``,
    ``LC_ALL``, ``TZ``, ``USER`` ... of this process, plus the step's ``env``; nothing else -
    in particular no ``OPSLOOP_*`` settings or secrets). At the timeout (or on cancel) the
    whole group gets SIGTERM, then SIGKILL after a grace period; processes the program left
    running in its group when it exited are ended the same way. (A program that moves itself
    into a new session - a daemon - escapes this; that is what service managers are for.)
    stdout/stderr are read concurrently and kept up to ``max_output_bytes`` each; the rest is
    drained and counted.

Python
    ``module:function(**args)`` in a daemon worker thread. Only modules the engine's
    ``python_modules`` allow-list names can be imported. **A Python step cannot be
    force-killed**: at its timeout the step fails and the thread is abandoned (it keeps running
    until the function returns). Prefer shell steps for anything that may hang.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_ENV_KEYS",
    "StepResult",
    "module_allowed",
    "run_http",
    "run_python",
    "run_shell",
    "run_wait",
]

BASE_ENV_KEYS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "USER", "LOGNAME", "TMPDIR")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_POLL_S = 0.02


@dataclass
class StepResult:
    """What one attempt of a step produced (raw, unredacted)."""

    ok: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    http_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    error: str | None = None
    timed_out: bool = False
    cancelled: bool = False


class _Capture(threading.Thread):
    """Reads a pipe to EOF, keeping the first ``cap`` bytes and counting the rest."""

    def __init__(self, pipe: Any, cap: int) -> None:
        super().__init__(daemon=True, name="runbook-capture")
        self.pipe = pipe
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def run(self) -> None:
        fd = self.pipe.fileno()
        try:
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                room = self.cap - len(self.buf)
                if room > 0:
                    self.buf += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                self.pipe.close()

    def text(self) -> str:
        return bytes(self.buf).decode("utf-8", errors="replace")


def _group_members(pgid: int) -> list[int] | None:
    """Live (non-zombie) pids in process group ``pgid``; ``None`` without ``/proc``."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    out: list[int] = []
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(d.name))
    return out


def group_alive(pgid: int) -> bool:
    """Whether any process (zombies aside, where ``/proc`` tells) is in group ``pgid``."""
    members = _group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_KILL_WAIT_S = 5.0


def _kill_group(pgid: int, proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` for it to go, then SIGKILL and wait (up to
    :data:`_KILL_WAIT_S`) until no member is left: a killed process dies when the kernel next
    schedules it, which on a busy host is not at once, and the step is reported ended with its
    group."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if _gone_within(pgid, proc, grace_s):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    _gone_within(pgid, proc, _KILL_WAIT_S)


def _gone_within(pgid: int, proc: subprocess.Popen, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``proc`` to exit and its group to empty; whether it did."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        proc.poll()
        if proc.returncode is not None and not group_alive(pgid):
            return True
        time.sleep(_POLL_S)
    return False


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The child's environment: :data:`BASE_ENV_KEYS` from ours, then ``extra``."""
    env = {k: os.environ[k] for k in BASE_ENV_KEYS if k in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(extra)
    return env


def run_shell(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 60.0,
    max_output_bytes: int = 64 * 1024,
    cancel: threading.Event | None = None,
    kill_grace_s: float = 3.0,
) -> StepResult:
    """Run ``argv`` (see the module doc); ``ok`` when it exits 0 in time."""
    cancel = cancel or threading.Event()
    if timeout_s <= 0:
        return StepResult(ok=False, error="no time left to run the step", timed_out=True)
    try:
        proc = subprocess.Popen(
            list(argv),
            shell=False,
            cwd=cwd,
            env=base_env(env or {}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as e:
        return StepResult(ok=False, error=f"cannot start {argv[0]!r}: {e}")
    pgid = proc.pid  # start_new_session: the child leads its own session and group
    out, err = _Capture(proc.stdout, max_output_bytes), _Capture(proc.stderr, max_output_bytes)
    out.start()
    err.start()
    deadline = time.monotonic() + timeout_s
    timed_out = cancelled = False
    while True:
        try:
            proc.wait(timeout=max(0.0, min(_POLL_S * 5, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            cancelled = True
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
    if timed_out or cancelled or group_alive(pgid):
        _kill_group(pgid, proc, kill_grace_s)
    proc.wait()
    out.join(timeout=kill_grace_s + 1)
    err.join(timeout=kill_grace_s + 1)
    res = StepResult(
        ok=proc.returncode == 0 and not timed_out and not cancelled,
        exit_code=proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        stdout_dropped=out.dropped,
        stderr_dropped=err.dropped,
        timed_out=timed_out,
        cancelled=cancelled,
    )
    if timed_out:
        res.error = f"timed out after {timeout_s:g}s; its process group was killed"
    elif cancelled:
        res.error = "cancelled; its process group was killed"
    elif proc.returncode != 0:
        res.error = f"exited with status {proc.returncode}"
    res.outputs = {
        "stdout": res.stdout.rstrip("\n"),
        "stderr": res.stderr.rstrip("\n"),
        "exit_code": proc.returncode,
    }
    return res


def run_http(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: Any = None,
    expected_status: Sequence[int] | None = None,
    timeout_s: float = 30.0,
    max_output_bytes: int = 64 * 1024,
    transport: Any = None,
) -> StepResult:
    """One request (no redirects followed); ``ok`` when the status is expected (default 2xx)."""
    import httpx

    if timeout_s <= 0:
        return StepResult(ok=False, error="no time left to run the step", timed_out=True)
    deadline = time.monotonic() + timeout_s
    buf = bytearray()
    dropped = 0
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, transport=transport) as client,
            client.stream(method, url, headers=dict(headers or {}), json=body) as resp,
        ):
            for chunk in resp.iter_bytes():
                room = max_output_bytes - len(buf)
                if room > 0:
                    buf += chunk[:room]
                dropped += max(0, len(chunk) - max(room, 0))
                if time.monotonic() > deadline:
                    return StepResult(
                        ok=False, error=f"timed out after {timeout_s:g}s", timed_out=True
                    )
            status = resp.status_code
            ctype = resp.headers.get("content-type", "")
    except httpx.TimeoutException as e:
        return StepResult(ok=False, error=f"timed out after {timeout_s:g}s: {e}", timed_out=True)
    except httpx.HTTPError as e:
        return StepResult(ok=False, error=f"{type(e).__name__}: {e}")
    text = bytes(buf).decode("utf-8", errors="replace")
    parsed: Any = None
    if not dropped and ("json" in ctype or text.lstrip()[:1] in ("{", "[")):
        with contextlib.suppress(ValueError):
            parsed = json.loads(text)
    ok = status in expected_status if expected_status else 200 <= status < 300
    return StepResult(
        ok=ok,
        http_status=status,
        stdout=text,
        stdout_dropped=dropped,
        error=None if ok else f"unexpected HTTP status {status}",
        outputs={"status_code": status, "body": text, "json": parsed},
    )


def module_allowed(module: str, allowed: Sequence[str]) -> bool:
    """Whether ``module`` is one of ``allowed`` or inside one of those packages.

    >>> module_allowed("acme.ops.disk", ["acme.ops"]), module_allowed("acme.opsx", ["acme.ops"])
    (True, False)
    """
    return any(module == a or module.startswith(a + ".") for a in allowed)


def run_python(
    entrypoint: str,
    args: Mapping[str, Any],
    *,
    allowed_modules: Sequence[str],
    timeout_s: float = 60.0,
    cancel: threading.Event | None = None,
) -> StepResult:
    """Call ``module:function(**args)`` in a worker thread (see the module doc)."""
    cancel = cancel or threading.Event()
    module_name, _, func_name = entrypoint.partition(":")
    if not module_allowed(module_name, allowed_modules):
        listed = ", ".join(allowed_modules) or "none"
        return StepResult(
            ok=False,
            error=f"python module {module_name!r} is not allowed (allowed: {listed}); "
            "the host's python_modules setting lists importable packages",
        )
    try:
        fn: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as e:
        return StepResult(ok=False, error=f"cannot load {entrypoint}: {e}")
    if not callable(fn):
        return StepResult(ok=False, error=f"{entrypoint} is not callable")
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["result"] = fn(**args)
        except BaseException as e:  # reported as the step's error
            box["error"] = f"{type(e).__name__}: {e}"

    worker = threading.Thread(target=call, daemon=True, name=f"runbook-python-{entrypoint}")
    worker.start()
    deadline = time.monotonic() + timeout_s
    while worker.is_alive():
        worker.join(timeout=_POLL_S)
        if cancel.is_set() and worker.is_alive():
            return StepResult(ok=False, cancelled=True, error="cancelled (the thread runs on)")
        if time.monotonic() >= deadline and worker.is_alive():
            return StepResult(
                ok=False,
                timed_out=True,
                error=f"timed out after {timeout_s:g}s (a Python step cannot be killed; "
                "its thread was abandoned)",
            )
    if "error" in box:
        return StepResult(ok=False, error=box["error"])
    result = box.get("result")
    shown = result if isinstance(result, str) else json.dumps(result, default=str, sort_keys=True)
    return StepResult(ok=True, stdout=shown, outputs={"result": result})


def run_wait(seconds: float, cancel: threading.Event | None = None) -> StepResult:
    """Sleep ``seconds`` unless cancelled."""
    cancel = cancel or threading.Event()
    if cancel.wait(seconds):
        return StepResult(ok=False, cancelled=True, error="cancelled")
    return StepResult(ok=True)
