"""Parse the Prometheus text exposition format (0.0.4) and OpenMetrics 1.0 text.

One function does both: :func:`parse` returns a :class:`ParseResult` holding the metric
families (name, type, help, unit, samples) in order of first appearance, every sample flat in
input order, and one :class:`ParseError` (line number and reason) per malformed line. A bad line
never loses the good ones; with ``strict=True`` the first error raises :class:`PromParseError`.
Pure functions, no I/O.

What is understood:

* ``# HELP``, ``# TYPE``, ``# UNIT`` and (OpenMetrics) ``# EOF``; other ``#`` lines are comments
  in the Prometheus format and errors in OpenMetrics.
* Types ``counter``, ``gauge``, ``histogram``, ``gaugehistogram``, ``summary``, ``info``,
  ``stateset``, ``untyped`` and ``unknown`` (either format may use any of them). Samples are
  grouped into families by suffix: ``_total``/``_created`` for counters, ``_bucket``/``_sum``/
  ``_count``/``_created`` for histograms, ``_bucket``/``_gsum``/``_gcount`` for gauge
  histograms, ``_sum``/``_count``/``_created`` plus ``{quantile=…}`` for summaries, ``_info``
  for info. A sample with no matching ``# TYPE`` forms its own ``untyped`` (Prometheus) or
  ``unknown`` (OpenMetrics) family.
* Label sets, empty ``{}`` included, with the escapes ``\\\\``, ``\\"`` and ``\\n`` in values
  (``\\\\``, ``\\n`` and ``\\"`` in HELP text). An unknown escape is an error in OpenMetrics and
  kept literally in the Prometheus format. A trailing comma in a label set is accepted.
* Values: decimal floats, ``NaN``, ``+Inf``, ``-Inf`` (case-insensitive).
* Timestamps: integer milliseconds in the Prometheus format, float seconds in OpenMetrics; both
  come out as seconds in :attr:`ParsedSample.timestamp_s`.
* Exemplars after `` # `` are checked and dropped (a malformed one is reported, the sample
  itself is kept).

Checks beyond syntax: duplicate label names, ``# TYPE``/``# HELP``/``# UNIT`` given twice or
after the family's samples, an OpenMetrics unit that isn't the family name's suffix, histogram
buckets without ``le``, summary quantiles without ``quantile``, non-numeric ``le``/``quantile``,
stateset samples without the label named after the family, and in OpenMetrics blank lines, a
missing ``# EOF`` and anything after it. Not supported: the protobuf format, Prometheus 3 quoted
UTF-8 metric names, native histograms.

>>> r = parse('# TYPE hits counter\\nhits_total{path="/a"} 3 1700000000000\\n')
>>> r.errors
[]
>>> s = r.samples[0]
>>> (s.name, s.labels, s.value, s.timestamp_s, s.family_type, s.family)
('hits_total', {'path': '/a'}, 3.0, 1700000000.0, 'counter', 'hits')
>>> [(e.line_no, e.reason) for e in parse("ok 1\\nbad{ 2\\n").errors]
[(2, "invalid label name at column 6: expected [a-zA-Z_][a-zA-Z0-9_]* or '}'")]
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "FAMILY_TYPES",
    "MetricFamily",
    "ParseError",
    "ParseResult",
    "ParsedSample",
    "PromParseError",
    "detect_openmetrics",
    "iter_samples",
    "parse",
    "parse_value",
]

FAMILY_TYPES = frozenset(
    {
        "counter",
        "gauge",
        "histogram",
        "gaugehistogram",
        "summary",
        "info",
        "stateset",
        "untyped",
        "unknown",
    }
)
"""Every family type either format may declare."""

# sample-name suffixes that belong to a family of each type ("" = the family name itself)
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created", ""),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info", ""),
    "stateset": ("",),
    "untyped": ("",),
    "unknown": ("",),
}
_ALL_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)",
    re.IGNORECASE,
)
_INT = re.compile(r"[+-]?[0-9]+")
# fast path for the common line shape: single spaces, no escapes, no exemplar
_FAST_PAIR = r'[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
_FAST_LINE = re.compile(
    rf"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{{((?:{_FAST_PAIR}(?:,{_FAST_PAIR})*,?)?)\}})?"
    r" ([^ \t#]+)(?: ([^ \t#]+))?"
)
_FAST_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')
_BLANK = " \t"
_META = re.compile(r"#[ \t]+(\S+)")


@dataclass(frozen=True, slots=True)
class ParsedSample:
    """One sample line: ``timestamp_s`` is seconds since the epoch, or ``None`` when absent.

    ``family_type`` is the type of the family it belongs to and ``family`` that family's name
    (``hits`` for the sample ``hits_total`` of the counter ``hits``).
    """

    name: str
    labels: dict[str, str]
    value: float
    timestamp_s: float | None
    family_type: str
    family: str = ""


@dataclass(slots=True)
class MetricFamily:
    """A metric family: its metadata and its samples, in input order."""

    name: str
    type: str
    help: str | None = None
    unit: str | None = None
    samples: list[ParsedSample] = field(default_factory=list)
    typed: bool = False
    """Whether ``type`` came from a ``# TYPE`` line (rather than the default)."""


@dataclass(frozen=True, slots=True)
class ParseError:
    """A malformed line: 1-based line number, the reason, and the line itself (cut to 200)."""

    line_no: int
    reason: str
    line: str = ""

    def __str__(self) -> str:
        return f"line {self.line_no}: {self.reason}"


class PromParseError(ValueError):
    """Raised by ``parse(..., strict=True)`` on the first malformed line."""

    def __init__(self, error: ParseError) -> None:
        super().__init__(str(error))
        self.error = error
        self.line_no = error.line_no
        self.reason = error.reason


@dataclass(slots=True)
class ParseResult:
    """What :func:`parse` found: families (first-appearance order), flat samples, errors."""

    families: list[MetricFamily]
    samples: list[ParsedSample]
    errors: list[ParseError]
    openmetrics: bool

    def __iter__(self) -> Iterator[ParsedSample]:
        return iter(self.samples)

    def family(self, name: str) -> MetricFamily | None:
        """The family called ``name``, if any."""
        for fam in self.families:
            if fam.name == name:
                return fam
        return None


class _LineError(Exception):
    """A reason a line is malformed (internal)."""


def parse_value(text: str) -> float:
    """Parse a sample value: a decimal float, ``NaN``, ``+Inf``/``-Inf``/``Inf``.

    Unlike :func:`float`, underscores, surrounding blanks and hex are refused.

    >>> parse_value("+Inf"), parse_value("-inf"), parse_value("1.5e3")
    (inf, -inf, 1500.0)
    >>> math.isnan(parse_value("NaN"))
    True
    >>> parse_value("1_000")
    Traceback (most recent call last):
    ...
    ValueError: invalid value '1_000'
    """
    if not _FLOAT.fullmatch(text):
        raise ValueError(f"invalid value {text!r}")
    return float(text)


def detect_openmetrics(text: str) -> bool:
    """Whether ``text`` looks like OpenMetrics: its last non-blank line is ``# EOF``.

    >>> detect_openmetrics("a 1\\n# EOF\\n"), detect_openmetrics("a 1\\n")
    (True, False)
    """
    stripped = text.rstrip()
    return stripped.endswith("\n# EOF") or stripped == "# EOF"


def _cut(line: str, limit: int = 200) -> str:
    return line if len(line) <= limit else line[:limit] + "…"


def _unescape_help(text: str, openmetrics: bool) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "\\":
                out.append("\\")
            elif nxt == "n":
                out.append("\n")
            elif nxt == '"':
                out.append('"')
            elif openmetrics:
                raise _LineError(f"invalid escape '\\{nxt}' in HELP text")
            else:
                out.append(ch + nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _skip_blanks(line: str, pos: int) -> int:
    n = len(line)
    while pos < n and line[pos] in _BLANK:
        pos += 1
    return pos


def _parse_label_value(line: str, pos: int, openmetrics: bool) -> tuple[str, int]:
    """``pos`` is just after the opening quote; return (value, position after closing quote)."""
    out: list[str] = []
    n = len(line)
    start = pos
    while pos < n:
        ch = line[pos]
        if ch == '"':
            return "".join(out), pos + 1
        if ch == "\\":
            if pos + 1 >= n:
                break
            nxt = line[pos + 1]
            if nxt == "\\":
                out.append("\\")
            elif nxt == '"':
                out.append('"')
            elif nxt == "n":
                out.append("\n")
            elif openmetrics:
                raise _LineError(f"invalid escape '\\{nxt}' in label value at column {pos + 1}")
            else:
                out.append(ch + nxt)
            pos += 2
            continue
        out.append(ch)
        pos += 1
    raise _LineError(f"unterminated label value starting at column {start}")


def _parse_labels(line: str, pos: int, openmetrics: bool) -> tuple[dict[str, str], int]:
    """``pos`` is just after ``{``; return (labels, position after ``}``)."""
    labels: dict[str, str] = {}
    n = len(line)
    while True:
        pos = _skip_blanks(line, pos)
        if pos < n and line[pos] == "}":
            return labels, pos + 1
        m = _LABEL_NAME.match(line, pos)
        if not m:
            raise _LineError(
                f"invalid label name at column {pos + 1}: expected [a-zA-Z_][a-zA-Z0-9_]* or '}}'"
            )
        name = m.group()
        pos = _skip_blanks(line, m.end())
        if pos >= n or line[pos] != "=":
            raise _LineError(f"expected '=' after label name {name!r} at column {pos + 1}")
        pos = _skip_blanks(line, pos + 1)
        if pos >= n or line[pos] != '"':
            raise _LineError(f"expected '\"' to open the value of label {name!r}")
        value, pos = _parse_label_value(line, pos + 1, openmetrics)
        if name in labels:
            raise _LineError(f"duplicate label name {name!r}")
        labels[name] = value
        pos = _skip_blanks(line, pos)
        if pos < n and line[pos] == ",":
            pos += 1
        elif pos < n and line[pos] == "}":
            return labels, pos + 1
        else:
            raise _LineError(f"expected ',' or '}}' after label {name!r} at column {pos + 1}")


def _parse_timestamp(text: str, openmetrics: bool) -> float:
    if openmetrics:
        if not _FLOAT.fullmatch(text):
            raise _LineError(f"invalid timestamp {text!r}: expected seconds")
        ts = float(text)
        if not math.isfinite(ts):
            raise _LineError(f"invalid timestamp {text!r}: not finite")
        return ts
    if not _INT.fullmatch(text):
        raise _LineError(f"invalid timestamp {text!r}: expected integer milliseconds")
    return int(text) / 1000.0


def _check_exemplar(text: str, openmetrics: bool) -> None:
    """``text`` follows the ``#`` after a sample: ``{labels} value [timestamp]``."""
    pos = _skip_blanks(text, 0)
    if pos >= len(text) or text[pos] != "{":
        raise _LineError("invalid exemplar: expected '{' after ' # '")
    _, pos = _parse_labels(text, pos + 1, openmetrics)
    parts = text[pos:].split()
    if not 1 <= len(parts) <= 2:
        raise _LineError("invalid exemplar: expected a value and an optional timestamp")
    try:
        parse_value(parts[0])
    except ValueError as exc:
        raise _LineError(f"invalid exemplar: {exc}") from None
    if len(parts) == 2:
        # exemplar timestamps are float seconds in both formats
        _parse_timestamp(parts[1], True)


def _parse_sample_line(
    line: str, openmetrics: bool
) -> tuple[str, dict[str, str], float, float | None, str | None]:
    """Return (name, labels, value, timestamp_s, exemplar error or None)."""
    fast = _FAST_LINE.fullmatch(line)
    if fast is not None:
        name, label_text, value_text, ts_text = fast.groups()
        labels: dict[str, str] = {}
        pairs = 0
        if label_text:
            for key, val in _FAST_LABEL.findall(label_text):
                labels[key] = val
                pairs += 1
        if len(labels) == pairs and _FLOAT.fullmatch(value_text):
            try:
                ts = None if ts_text is None else _parse_timestamp(ts_text, openmetrics)
            except _LineError:
                pass  # the full parser reports it
            else:
                return name, labels, float(value_text), ts, None
    return _parse_sample_line_slow(line, openmetrics)


def _parse_sample_line_slow(
    line: str, openmetrics: bool
) -> tuple[str, dict[str, str], float, float | None, str | None]:
    m = _METRIC_NAME.match(line)
    if not m:
        raise _LineError("invalid metric name: expected [a-zA-Z_:][a-zA-Z0-9_:]*")
    name = m.group()
    pos = m.end()
    after = _skip_blanks(line, pos)
    labels: dict[str, str] = {}
    if after < len(line) and line[after] == "{":
        labels, pos = _parse_labels(line, after + 1, openmetrics)
    elif after == pos and pos < len(line):
        raise _LineError(f"invalid character {line[pos]!r} in metric name at column {pos + 1}")
    rest = line[pos:]
    if not rest.strip():
        raise _LineError(f"missing value for {name}")
    if rest[0] not in _BLANK:
        raise _LineError(f"expected a blank before the value at column {pos + 1}")
    exemplar_error: str | None = None
    hash_at = rest.find("#")
    if hash_at >= 0:
        exemplar = rest[hash_at + 1 :]
        rest = rest[:hash_at]
        if not rest.endswith((" ", "\t")):
            raise _LineError("expected ' # ' before an exemplar")
        try:
            _check_exemplar(exemplar, openmetrics)
        except _LineError as exc:
            exemplar_error = str(exc)
    parts = rest.split()
    if not parts:
        raise _LineError(f"missing value for {name}")
    try:
        value = parse_value(parts[0])
    except ValueError as exc:
        raise _LineError(str(exc)) from None
    if len(parts) > 2:
        raise _LineError(f"unexpected text after the timestamp: {' '.join(parts[2:])!r}")
    ts = _parse_timestamp(parts[1], openmetrics) if len(parts) == 2 else None
    return name, labels, value, ts, exemplar_error


class _Parser:
    def __init__(self, openmetrics: bool, strict: bool) -> None:
        self.om = openmetrics
        self.strict = strict
        self.families: dict[str, MetricFamily] = {}
        self.samples: list[ParsedSample] = []
        self.errors: list[ParseError] = []
        self.current: MetricFamily | None = None

    def error(self, line_no: int, reason: str, line: str) -> None:
        err = ParseError(line_no, reason, _cut(line))
        if self.strict:
            raise PromParseError(err)
        self.errors.append(err)

    def _family(self, name: str) -> MetricFamily:
        fam = self.families.get(name)
        if fam is None:
            fam = MetricFamily(name=name, type="unknown" if self.om else "untyped")
            self.families[name] = fam
        return fam

    # -- metadata lines ------------------------------------------------------------------------

    def meta(self, line: str) -> None:
        m = _META.match(line)
        keyword = m.group(1) if m else ""
        if keyword not in ("HELP", "TYPE", "UNIT"):
            if self.om:
                raise _LineError(
                    "invalid comment: OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF"
                )
            return
        assert m is not None
        rest = line[m.end() :]
        rest = rest.lstrip(_BLANK)
        m = _METRIC_NAME.match(rest)
        if not m or (m.end() < len(rest) and rest[m.end()] not in _BLANK):
            raise _LineError(f"invalid metric name in # {keyword}")
        name = m.group()
        arg = rest[m.end() :].lstrip(_BLANK)
        fam = self._family(name)
        if keyword == "HELP":
            if fam.help is not None:
                raise _LineError(f"second HELP line for {name}")
            fam.help = _unescape_help(arg, self.om)
        elif keyword == "TYPE":
            kind = arg.strip()
            if kind not in FAMILY_TYPES:
                raise _LineError(f"unknown metric type {kind!r} for {name}")
            if fam.typed:
                raise _LineError(f"second TYPE line for {name}")
            if fam.samples:
                raise _LineError(f"TYPE line for {name} after its samples")
            fam.type = kind
            fam.typed = True
        else:
            unit = arg.strip()
            if fam.unit is not None:
                raise _LineError(f"second UNIT line for {name}")
            if self.om and unit and not name.endswith("_" + unit):
                raise _LineError(f"unit {unit!r} is not a suffix of the metric name {name}")
            fam.unit = unit
        self.current = fam

    # -- sample lines --------------------------------------------------------------------------

    def _accepts(self, fam: MetricFamily, sample_name: str) -> bool:
        if not sample_name.startswith(fam.name):
            return False
        suffix = sample_name[len(fam.name) :]
        return suffix in _SUFFIXES[fam.type]

    def _resolve(self, sample_name: str) -> MetricFamily:
        exact = self.families.get(sample_name)
        if exact is not None and exact.typed and self._accepts(exact, sample_name):
            return exact
        if self.current is not None and self._accepts(self.current, sample_name):
            return self.current
        for suffix in _ALL_SUFFIXES:
            if sample_name.endswith(suffix) and len(sample_name) > len(suffix):
                fam = self.families.get(sample_name[: -len(suffix)])
                if fam is not None and self._accepts(fam, sample_name):
                    return fam
        if exact is not None:
            if self._accepts(exact, sample_name):
                return exact
            raise _LineError(f"sample {sample_name} does not fit the {exact.type} {exact.name}")
        fam = MetricFamily(name=sample_name, type="unknown" if self.om else "untyped")
        self.families[sample_name] = fam
        return fam

    def _check_semantics(self, fam: MetricFamily, name: str, labels: dict[str, str]) -> None:
        suffix = name[len(fam.name) :]
        if fam.type in ("histogram", "gaugehistogram") and suffix == "_bucket":
            self._numeric_label(labels, "le", "histogram bucket", name)
        elif fam.type == "summary" and suffix == "":
            self._numeric_label(labels, "quantile", "summary quantile", name)
        elif fam.type == "stateset" and fam.name not in labels:
            raise _LineError(f"stateset sample {name} has no {fam.name!r} label")

    @staticmethod
    def _numeric_label(labels: dict[str, str], key: str, what: str, name: str) -> None:
        if key not in labels:
            raise _LineError(f"{what} {name} has no {key!r} label")
        try:
            parse_value(labels[key])
        except ValueError:
            raise _LineError(f"{what} {name} has a non-numeric {key}={labels[key]!r}") from None

    def sample(self, line_no: int, line: str) -> None:
        name, labels, value, ts, exemplar_error = _parse_sample_line(line, self.om)
        fam = self._resolve(name)
        self._check_semantics(fam, name, labels)
        sample = ParsedSample(name, labels, value, ts, fam.type, fam.name)
        fam.samples.append(sample)
        self.samples.append(sample)
        self.current = fam
        if exemplar_error:
            self.error(line_no, exemplar_error, line)

    # -- driver --------------------------------------------------------------------------------

    def run(self, text: str) -> None:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        seen_eof = False
        for idx, raw in enumerate(lines):
            line_no = idx + 1
            line = raw[:-1] if raw.endswith("\r") else raw
            if seen_eof:
                self.error(line_no, "content after # EOF", line)
                continue
            if self.om and line.strip() == "# EOF":
                if line != "# EOF":
                    self.error(line_no, "malformed # EOF line", line)
                seen_eof = True
                continue
            if not line.strip():
                if self.om:
                    self.error(line_no, "empty line (not allowed in OpenMetrics)", line)
                continue
            try:
                if line.lstrip(_BLANK).startswith("#"):
                    self.meta(line.lstrip(_BLANK))
                else:
                    self.sample(line_no, line.lstrip(_BLANK) if not self.om else line)
            except _LineError as exc:
                self.error(line_no, str(exc), line)
        if self.om and not seen_eof:
            self.error(len(lines) + 1, "missing # EOF at the end of OpenMetrics text", "")


def parse(text: str, *, openmetrics: bool | None = None, strict: bool = False) -> ParseResult:
    """Parse an exposition page.

    ``openmetrics``: ``True`` for OpenMetrics 1.0, ``False`` for the Prometheus text format
    0.0.4, ``None`` to decide from the text (:func:`detect_openmetrics`). ``strict=True`` raises
    :class:`PromParseError` at the first malformed line; otherwise every malformed line is
    reported in :attr:`ParseResult.errors` and parsing goes on.

    Families without any sample (HELP/TYPE only) are kept in :attr:`ParseResult.families`.
    """
    om = detect_openmetrics(text) if openmetrics is None else openmetrics
    p = _Parser(om, strict)
    p.run(text)
    return ParseResult(list(p.families.values()), p.samples, p.errors, om)


def iter_samples(
    text: str, *, openmetrics: bool | None = None, strict: bool = False
) -> Iterator[ParsedSample]:
    """Every sample of ``text`` in input order (errors are dropped unless ``strict``).

    >>> [(s.name, s.value) for s in iter_samples("a 1\\nb{x=\\"y\\"} -Inf\\n")]
    [('a', 1.0), ('b', -inf)]
    """
    yield from parse(text, openmetrics=openmetrics, strict=strict).samples
