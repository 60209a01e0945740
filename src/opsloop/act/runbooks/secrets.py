"""``${secret:NAME}``: where secrets come from, and the :class:`Redactor` that hides them.

A secret ``NAME`` is looked up, in order:

1. the environment variable ``OPSLOOP_SECRET_<NAME>`` (``NAME`` as written, then upper case);
2. a secrets file - TOML or JSON, a flat table of ``NAME = "value"`` (or the same under a
   ``[secrets]`` table). The file must be a regular file owned by the current user with mode
   ``0600`` (or stricter, ``0400``); anything group/world readable is refused with a clear
   :class:`SecretError`, as is a missing name.

Every value handed out is registered with the resolver's :class:`Redactor`, which masks it - and
its URL-encoded and JSON-escaped forms - in any text before that text is stored or shown.

>>> r = Redactor()
>>> r.add("API_TOKEN", "s3cr3t-value")
>>> r.redact("curl -H 'Authorization: s3cr3t-value' => 401")
"curl -H 'Authorization: [secret:API_TOKEN]' => 401"
"""

from __future__ import annotations

import json
import os
import stat
import threading
import tomllib
import urllib.parse
from collections.abc import Mapping
from pathlib import Path

__all__ = ["ENV_PREFIX", "Redactor", "SecretError", "SecretResolver", "load_secrets_file"]

ENV_PREFIX = "OPSLOOP_SECRET_"
_MIN_PARTIAL = 3  # a truncated tail is masked from this many leading characters of a secret


class SecretError(ValueError):
    """A secret that cannot be found, or a secrets file that is refused."""


def load_secrets_file(path: str | Path) -> dict[str, str]:
    """Read a TOML (``.toml``) or JSON file of secrets after checking its owner and mode."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise SecretError(f"secrets file {p}: cannot read it ({e.strerror})") from e
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"secrets file {p}: not a regular file")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretError(
            f"secrets file {p}: mode {mode:04o} lets other users read it; "
            f"run 'chmod 600 {p}' (refusing to use it)"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise SecretError(f"secrets file {p}: owned by uid {st.st_uid}, not by this user")
    raw = p.read_bytes()
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SecretError(f"secrets file {p}: not valid {p.suffix or 'TOML'}: {e}") from e
    if isinstance(data, dict) and isinstance(data.get("secrets"), dict):
        data = data["secrets"]
    if not isinstance(data, dict):
        raise SecretError(f"secrets file {p}: expected a table of NAME = value")
    out: dict[str, str] = {}
    for k, v in data.items():
        if not isinstance(v, str | int | float) or isinstance(v, bool):
            raise SecretError(f"secrets file {p}: {k!r} must be a string")
        out[str(k)] = str(v)
    return out


class Redactor:
    """Masks registered secret values in text (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}  # form -> name

    def add(self, name: str, value: str) -> None:
        """Register ``value`` (and its encoded forms) as the secret ``name``."""
        if not value:
            return
        forms = {
            value,
            urllib.parse.quote(value, safe=""),
            urllib.parse.quote_plus(value, safe=""),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
        with self._lock:
            for f in forms:
                if f:
                    self._values[f] = name

    def __len__(self) -> int:
        return len(self._values)

    def redact(self, text: str, *, truncated: bool = False) -> str:
        """``text`` with every secret replaced by ``[secret:NAME]``.

        With ``truncated=True`` a tail that is the start of a secret (the text was cut in the
        middle of it) is masked too.

        >>> r = Redactor(); r.add("PW", "hunter2!")
        >>> r.redact("pw=hunter2%21 and hunt", truncated=True)
        'pw=[secret:PW] and [secret:PW]'
        """
        if not text:
            return text
        with self._lock:
            items = sorted(self._values.items(), key=lambda kv: -len(kv[0]))
        for value, name in items:
            if value in text:
                text = text.replace(value, f"[secret:{name}]")
        if truncated:
            for value, name in items:
                for k in range(min(len(value) - 1, len(text)), _MIN_PARTIAL - 1, -1):
                    if text.endswith(value[:k]):
                        text = text[:-k] + f"[secret:{name}]"
                        break
        return text


class SecretResolver:
    """Resolves secret names from the environment and an optional secrets file.

    ``environ`` defaults to ``os.environ`` (read at lookup time); the file is read once, on
    first use, so a refused file fails the first run that needs a secret - not start-up.
    """

    def __init__(
        self,
        secrets_file: str | Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.secrets_file = Path(secrets_file) if secrets_file else None
        self.environ = environ
        self.redactor = redactor or Redactor()
        self._file: dict[str, str] | None = None
        self._lock = threading.Lock()

    def _from_file(self) -> dict[str, str]:
        if self.secrets_file is None:
            return {}
        with self._lock:
            if self._file is None:
                self._file = load_secrets_file(self.secrets_file)
            return self._file

    def exists(self, name: str) -> bool:
        """Whether ``name`` can be resolved (without registering its value)."""
        try:
            self._lookup(name)
        except SecretError:
            return False
        return True

    def _lookup(self, name: str) -> str:
        env = os.environ if self.environ is None else self.environ
        for key in (ENV_PREFIX + name, ENV_PREFIX + name.upper()):
            if key in env:
                return env[key]
        data = self._from_file()
        if name in data:
            return data[name]
        where = f"${ENV_PREFIX}{name.upper()}"
        if self.secrets_file is not None:
            where += f" or {self.secrets_file}"
        raise SecretError(f"secret {name!r} is not set (looked in {where})")

    def __call__(self, name: str) -> str:
        """The secret's value, registered with the redactor."""
        value = self._lookup(name)
        self.redactor.add(name, value)
        return value
