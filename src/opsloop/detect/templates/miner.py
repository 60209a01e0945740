"""Streaming log template miner with stable template ids.

Algorithm (one pass, online, one default configuration for every system):

1. **Mask** obvious variables (numbers, hex, IPs, MACs; digits inside words) with one regex pass
   (:func:`~opsloop.detect.templates.masking.mask`). Every digit run is masked, so two lines
   that differ only in their digits mask alike: a bounded *memo* keyed by the line with its
   digits zeroed (``str.translate``, C speed) answers most lines with one dict lookup, before
   any regex runs.
2. **Tokenise** (:func:`~opsloop.detect.templates.tokenize.tokenize`): whitespace tokens, runs of
   repeated variable tokens collapsed (variable-length lists), at most ``max_tokens`` tokens.
3. **Match** against templates with the same token count (an index by length): a template
   matches when every constant position is equal; generalised positions match anything.
4. **Learn variables from evidence, not from similarity.** A line that differs from a template in
   exactly one constant position is a *near miss*; the distinct values seen at that position in
   that exact context are kept (capped). Once ``min_distinct`` distinct values have been seen,
   the position is a variable: it becomes ``<*>`` (keeping the common prefix/suffix such as
   ``rhost=<*>``) and every same-length template compatible with the generalised one is merged
   into it. Two or so alternative words (``Accepted``/``Failed``, ``en0``/``awdl0``) stay
   separate templates, while user names, hosts, paths or class names, which take many values,
   become variables. Because only one position may differ, an enumeration never merges with a
   template that also differs elsewhere (no over-merging by a similarity ratio, Drain's error);
   because evidence accumulates across lines, a word variable is found however the line starts
   (no under-merging by a fixed prefix tree, Drain's other error).

**Stable ids.** A template id is a counter value given when the template is created and never
reused. When two templates merge, the *older (smaller) id survives* and the other id becomes an
alias of it (kept in ``aliases``); :meth:`TemplateMiner.resolve` follows aliases, so an id ever
returned by :meth:`TemplateMiner.learn_one` always resolves to the template that now holds its
lines, also after :meth:`TemplateMiner.to_dict` / :meth:`TemplateMiner.from_dict`.

**Memory** is bounded by what is learned: templates, their pending evidence (at most
``min_distinct`` values per position), aliases (one per merged template) and the memo, which is
cleared when it reaches ``cache_size`` entries. Nothing grows with the number of lines seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opsloop.detect.templates.masking import WILDCARD, mask
from opsloop.detect.templates.tokenize import MAX_TOKENS, tokenize

__all__ = ["Match", "TemplateMiner"]

_STATE_VERSION = 1
# The memo key: every digit run is masked, so lines that differ only in digits mask the same.
_DIGITS_TO_ZERO = str.maketrans("123456789", "000000000")
_ALNUM = re.compile(r"[A-Za-z0-9]")


@lru_cache(maxsize=4096)
def _params_regex(template: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in template.split(WILDCARD)]
    parts = [re.sub(r"(?:\\\s|\s)+", r"\\s+", p) for p in parts]
    return re.compile(r"\s*" + "(.*?)".join(parts) + r"\s*", re.DOTALL)


def extract_params(template: str, content: str) -> list[str]:
    """Return the values of the ``<*>`` variables of ``template`` in ``content``.

    The template is turned into a regex (``<*>`` becomes a lazy group, whitespace matches any
    whitespace) and matched against the whole content; ``[]`` when it does not match.

    >>> extract_params("user <*> from <*>", "user bob from 10.0.0.1")
    ['bob', '10.0.0.1']
    """
    if WILDCARD not in template:
        return []
    m = _params_regex(template).fullmatch(content)
    return list(m.groups()) if m else []


@dataclass(frozen=True, slots=True)
class Match:
    """The template a message belongs to.

    ``template_id`` is stable (see :class:`TemplateMiner`), ``template`` is the template text
    with ``<*>`` for each variable at the time of the call, ``content`` the message itself and
    ``params`` (computed on access) the values of the variables.

    >>> Match(3, "took <*> ms", "took 12 ms").params
    ['12']
    """

    template_id: int
    template: str
    content: str

    @property
    def params(self) -> list[str]:
        """Values of the template's variables in ``content`` (empty list if none)."""
        return extract_params(self.template, self.content)


class _Template:
    __slots__ = ("count", "id", "pending", "seps", "text", "tokens", "wild")

    def __init__(self, tid: int, tokens: list[str], seps: list[str], count: int = 0) -> None:
        self.id = tid
        self.tokens = tokens
        self.seps = seps
        self.count = count
        # generalised positions -> (prefix, suffix) kept around the variable
        self.wild: dict[int, tuple[str, str]] = {}
        # constant position -> distinct values seen there in near-miss lines (own value first)
        self.pending: dict[int, list[str]] = {}
        self.text = ""
        self.refresh()

    def refresh(self) -> None:
        for i, (p, s) in self.wild.items():
            self.tokens[i] = p + WILDCARD + s
        out = [self.tokens[0]] if self.tokens else []
        for sep, tok in zip(self.seps, self.tokens[1:], strict=False):
            out.append(sep)
            out.append(tok)
        self.text = "".join(out)


def _cut_prefix(a: str, b: str, marker: str = WILDCARD) -> str:
    """Longest common prefix of a and b, before any ``marker``, ending on a non-alphanumeric."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    pre = a[:n]
    if marker in pre:
        pre = pre[: pre.index(marker)]
    while pre and _ALNUM.match(pre[-1]):
        pre = pre[:-1]
    return pre


def _cut_suffix(a: str, b: str) -> str:
    """Longest common suffix of a and b, after any ``<*>``, starting on a non-alphanumeric."""
    return _cut_prefix(a[::-1], b[::-1], WILDCARD[::-1])[::-1]


_DELIM = re.compile(r"[^A-Za-z0-9\x00]")


UNRELATED, WEAK, STRONG = 0, 1, 2


def _common_prefix_len(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _relation(a: str, b: str) -> int:
    """How much two differing tokens (same position, same context) look like one variable.

    ``STRONG`` (2 distinct values suffice): one is a masked value ``<*>``, also behind a common
    ``key=`` / ``key:`` (``rhost=<*>`` / ``rhost=example.org``); both are paths; or structured
    ids that both hold a masked part and share a prefix or suffix with a delimiter in it,
    differing in a non-empty middle (``attempt_<*>_m_<*>`` / ``attempt_<*>_r_<*>``).
    ``WEAK`` (``min_distinct`` values needed, also allowed as the first token): dotted names
    of one namespace (``com.apple.a.b:`` / ``com.apple.c:``).
    ``UNRELATED``: anything else, e.g. plain words; those need ``min_distinct`` values and
    may not be the first token.

    >>> _relation("alice", "bob"), _relation("en<*>", "awdl<*>"), _relation("a.x.y", "a.z")
    (0, 0, 1)
    >>> _relation("/tmp/a", "/var/b"), _relation("rhost=<*>", "rhost=ex.org")
    (2, 2)
    """
    if a == WILDCARD or b == WILDCARD:
        return STRONG
    if "/" in a and "/" in b:
        return STRONG
    pre = _common_prefix_len(a, b)
    key = max(a.rfind("=", 0, pre), a.rfind(":", 0, pre)) + 1
    if key:
        va, vb = a[key:], b[key:]
        if va == WILDCARD or vb == WILDCARD:
            return STRONG
    if WILDCARD in a and WILDCARD in b:
        a0 = a.replace(WILDCARD, "\x00")
        b0 = b.replace(WILDCARD, "\x00")
        pre = _common_prefix_len(a0, b0)
        suf = _common_prefix_len(a0[pre:][::-1], b0[pre:][::-1])
        if pre + suf < min(len(a0), len(b0)) and pre + suf >= 2:
            shared = a0[:pre] + " " + a0[len(a0) - suf :]
            if _DELIM.search(shared.strip()) and _ALNUM.search(shared):
                return STRONG
        return UNRELATED
    dot = a.rfind(".", 0, pre)
    if dot > 0 and _ALNUM.match(a[dot - 1]) and "." in a[dot + 1 :] + b[dot + 1 :]:
        return WEAK
    return UNRELATED


def _affixes(values: list[str]) -> tuple[str, str]:
    """Common prefix/suffix (cut at non-alphanumerics) shared by all values."""
    pre = suf = values[0]
    for v in values[1:]:
        pre = _cut_prefix(pre, v)
        suf = _cut_suffix(suf, v)
    if not pre and not suf:
        return "", ""
    short = min(len(v) for v in values)
    if len(pre) + len(suf) > short:  # overlapping affixes: keep the prefix only
        suf = ""
    return pre, suf


class TemplateMiner:
    """Online log template miner (river-style: ``learn_one`` / ``match``), JSON-able state.

    See the module docstring for the algorithm. ``min_distinct`` is how many distinct values a
    position must show, in one context, before it is a variable; ``cache_size`` bounds the memo
    of masked lines; ``max_tokens`` bounds the tokens of one message.

    >>> miner = TemplateMiner()
    >>> for user in ("alice", "bob", "carol"):
    ...     m = miner.learn_one(f"Invalid user {user} from 10.0.0.{len(user)}")
    >>> m.template, m.params
    ('Invalid user <*> from <*>', ['carol', '10.0.0.5'])
    >>> miner.resolve(miner.learn_one("Invalid user alice from 10.0.0.9").template_id)
    1
    >>> miner.match("Accepted password for bob") is None
    True
    >>> TemplateMiner.from_dict(miner.to_dict()).match("Invalid user dan from ::1").template_id
    1
    """

    def __init__(
        self, min_distinct: int = 3, cache_size: int = 100_000, max_tokens: int = MAX_TOKENS
    ) -> None:
        if min_distinct < 2:
            raise ValueError("min_distinct must be at least 2")
        self.min_distinct = min_distinct
        self.cache_size = cache_size
        self.max_tokens = max_tokens
        self.max_diff = 2
        self._templates: dict[int, _Template] = {}
        self._by_len: dict[int, list[_Template]] = {}
        self._aliases: dict[int, int] = {}
        self._cache: dict[str, int] = {}
        self._next_id = 1

    # ------------------------------------------------------------------ public API
    def learn_one(self, content: str) -> Match:
        """Assign ``content`` to a template, learning from it, and return the :class:`Match`."""
        key = content.translate(_DIGITS_TO_ZERO)
        tid = self._cache.get(key)
        if tid is not None:
            t = self._templates.get(tid)
            if t is None:
                tid = self.resolve(tid)
                self._cache[key] = tid
                t = self._templates[tid]
            t.count += 1
            return Match(t.id, t.text, content)
        t = self._learn_tokens(*tokenize(mask(content), self.max_tokens))
        t.count += 1
        if len(self._cache) >= self.cache_size:
            self._cache.clear()
        self._cache[key] = t.id
        return Match(t.id, t.text, content)

    def match(self, content: str) -> Match | None:
        """Return the template ``content`` belongs to, or ``None``; learns nothing."""
        tid = self._cache.get(content.translate(_DIGITS_TO_ZERO))
        if tid is not None:
            t = self._templates[self.resolve(tid)]
            return Match(t.id, t.text, content)
        tokens, _ = tokenize(mask(content), self.max_tokens)
        best = self._find(tokens)[0]
        return None if best is None else Match(best.id, best.text, content)

    def resolve(self, template_id: int) -> int:
        """Follow the alias chain of a (possibly merged) template id to the live template id."""
        seen = 0
        while template_id in self._aliases:
            template_id = self._aliases[template_id]
            seen += 1
            if seen > len(self._aliases):  # defensive: corrupt state with a cycle
                raise ValueError("alias cycle in template state")
        return template_id

    def template(self, template_id: int) -> str:
        """Current text of the template with this (possibly aliased) id."""
        return self._templates[self.resolve(template_id)].text

    @property
    def templates(self) -> dict[int, str]:
        """Live templates: id -> template text."""
        return {tid: t.text for tid, t in self._templates.items()}

    @property
    def aliases(self) -> dict[int, int]:
        """Merged ids -> the id they were merged into (follow with :meth:`resolve`)."""
        return dict(self._aliases)

    def __len__(self) -> int:
        return len(self._templates)

    # ------------------------------------------------------------------ state
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (templates, counts, pending evidence, aliases); the memo is left out."""
        return {
            "version": _STATE_VERSION,
            "config": {
                "min_distinct": self.min_distinct,
                "cache_size": self.cache_size,
                "max_tokens": self.max_tokens,
            },
            "next_id": self._next_id,
            "templates": [
                {
                    "id": t.id,
                    "tokens": list(t.tokens),
                    "seps": list(t.seps),
                    "count": t.count,
                    "wild": {str(i): [p, s] for i, (p, s) in sorted(t.wild.items())},
                    "pending": {str(i): list(v) for i, v in sorted(t.pending.items())},
                }
                for t in sorted(self._templates.values(), key=lambda t: t.id)
            ],
            "aliases": {str(k): v for k, v in sorted(self._aliases.items())},
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TemplateMiner:
        """Rebuild a miner from :meth:`to_dict` output (ids, aliases and evidence preserved)."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported template state version {state.get('version')!r}")
        miner = cls(**state.get("config", {}))
        miner._next_id = int(state["next_id"])
        for d in state["templates"]:
            t = _Template(int(d["id"]), list(d["tokens"]), list(d["seps"]), int(d["count"]))
            t.wild = {int(i): (p, s) for i, (p, s) in d.get("wild", {}).items()}
            t.pending = {int(i): list(v) for i, v in d.get("pending", {}).items()}
            t.refresh()
            miner._add(t)
        miner._aliases = {int(k): int(v) for k, v in state.get("aliases", {}).items()}
        return miner

    # ------------------------------------------------------------------ internals
    def _add(self, t: _Template) -> None:
        self._templates[t.id] = t
        self._by_len.setdefault(len(t.tokens), []).append(t)

    def _find(
        self, tokens: list[str]
    ) -> tuple[_Template | None, list[tuple[_Template, tuple[int, ...]]]]:
        """Best matching template and near misses (template, differing constant positions)."""
        best: _Template | None = None
        best_key = (-1, 0)
        near: list[tuple[_Template, tuple[int, ...]]] = []
        max_diff = self.max_diff
        for t in self._by_len.get(len(tokens), ()):
            diff: list[int] = []
            wild = t.wild
            for i, (a, b) in enumerate(zip(t.tokens, tokens, strict=True)):
                if a != b and i not in wild:
                    diff.append(i)
                    if len(diff) > max_diff:
                        break
            else:
                if not diff:
                    key = (len(t.tokens) - len(wild), -t.id)
                    if key > best_key:
                        best, best_key = t, key
                else:
                    near.append((t, tuple(diff)))
        return best, near

    def _learn_tokens(self, tokens: list[str], seps: list[str]) -> _Template:
        best, near = self._find(tokens)
        if best is not None:
            self._widen(best, tokens)
            return best
        ready: list[tuple[_Template, tuple[int, ...]]] = []
        for t, diff in near:
            rel = [_relation(t.tokens[i], tokens[i]) for i in diff]
            if len(diff) > 1 and min(rel) < STRONG:
                continue  # several tokens differ: only strongly shaped variables vary together
            if diff[0] == 0 and rel[0] == UNRELATED:
                continue  # a plain first word is the message's verb or subject, not a variable
            consts = sum(1 for i, tok in enumerate(t.tokens) if tok != WILDCARD and i not in t.wild)
            if consts - len(diff) < 1:
                continue  # would leave no constant token
            done = True
            for i, r in zip(diff, rel, strict=True):
                values = t.pending.setdefault(i, [t.tokens[i]])
                if tokens[i] not in values and len(values) < self.min_distinct:
                    values.append(tokens[i])
                if len(values) < (2 if r == STRONG and len(diff) == 1 else self.min_distinct):
                    done = False
            if done:
                ready.append((t, diff))
        if ready:
            t, diff = min(ready, key=lambda r: r[0].id)
            for i in diff:
                t.wild[i] = _affixes([*t.pending.pop(i), tokens[i]])
            t.refresh()
            t = self._absorb(t)
            self._widen(t, tokens)
            return t
        t = _Template(self._next_id, list(tokens), list(seps))
        self._next_id += 1
        for other, diff in near:
            if len(diff) == 1:  # same context: the evidence of the sibling is ours too
                i = diff[0]
                seed = other.pending.get(i, [other.tokens[i]])
                vals = [tokens[i], *(v for v in seed if v != tokens[i])]
                t.pending[i] = vals[: self.min_distinct]
        self._add(t)
        return t

    def _widen(self, t: _Template, tokens: list[str]) -> None:
        """Shrink the prefix/suffix of generalised positions that ``tokens`` does not fit."""
        changed = False
        for i, (p, s) in t.wild.items():
            tok = tokens[i]
            if (p or s) and not (
                tok.startswith(p) and tok.endswith(s) and len(tok) >= len(p) + len(s)
            ):
                t.wild[i] = _affixes([p + WILDCARD + s, tok]) if tok != WILDCARD else ("", "")
                changed = True
        if changed:
            t.refresh()

    def _absorb(self, t: _Template) -> _Template:
        """Merge ``t`` with every same-length template that it subsumes or that subsumes it."""
        changed = True
        while changed:
            changed = False
            for other in list(self._by_len.get(len(t.tokens), ())):
                if other is t:
                    continue
                pairs = list(enumerate(zip(t.tokens, other.tokens, strict=True)))
                if all(a == b or i in t.wild for i, (a, b) in pairs) or all(
                    a == b or i in other.wild for i, (a, b) in pairs
                ):  # one subsumes the other (compatible but crossing wildcards do not merge)
                    t = self._merge(t, other)
                    changed = True
                    break
        return t

    def _merge(self, a: _Template, b: _Template) -> _Template:
        keep, gone = (a, b) if a.id < b.id else (b, a)
        for i, (x, y) in enumerate(zip(keep.tokens, gone.tokens, strict=True)):
            if i in keep.wild or i in gone.wild or x != y:
                keep.wild[i] = _affixes([x, y])
                keep.pending.pop(i, None)
        for i, vals in gone.pending.items():
            if i not in keep.wild:
                mine = keep.pending.setdefault(i, [keep.tokens[i]])
                for v in vals:
                    if v not in mine and len(mine) < self.min_distinct:
                        mine.append(v)
        keep.count += gone.count
        keep.refresh()
        del self._templates[gone.id]
        self._by_len[len(gone.tokens)].remove(gone)
        self._aliases[gone.id] = keep.id
        for k, v in self._aliases.items():  # keep chains short: point straight at survivors
            if v == gone.id:
                self._aliases[k] = keep.id
        return keep
