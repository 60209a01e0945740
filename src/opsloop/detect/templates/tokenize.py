"""Tokenisation of a masked log message into the token sequence the miner clusters on.

Tokens are the whitespace-separated words of the (already masked) message; the whitespace
between them is kept apart so a template can be printed with the spacing of its first line.
Two generic normalisations make the token count stable for messages of variable length:

- a run of consecutive identical tokens that contain a variable (``blk_<*> blk_<*> blk_<*>``,
  ``<*> <*> <*>``) is a variable-length list and collapses to a single token;
- a message longer than ``max_tokens`` tokens keeps its first ``max_tokens - 1`` tokens and the
  rest becomes one ``<*>`` (bounds the work and memory a pathological line can cost).

>>> tokenize("ask <*> to delete blk_<*> blk_<*> blk_<*>")
(['ask', '<*>', 'to', 'delete', 'blk_<*>'], [' ', ' ', ' ', ' '])
>>> tokenize("a  b")
(['a', 'b'], ['  '])
"""

from __future__ import annotations

import re

from opsloop.detect.templates.masking import WILDCARD

__all__ = ["MAX_TOKENS", "tokenize"]

#: Default cap on the number of tokens of one message (the tail becomes one variable).
MAX_TOKENS = 128

_WS = re.compile(r"(\s+)")


def tokenize(masked: str, max_tokens: int = MAX_TOKENS) -> tuple[list[str], list[str]]:
    """Split a masked message into tokens and the separators between them.

    Returns ``(tokens, seps)`` with ``len(seps) == max(len(tokens) - 1, 0)``.

    >>> tokenize("  x <*> <*> y ")
    (['x', '<*>', 'y'], [' ', ' '])
    >>> tokenize("")
    ([], [])
    """
    parts = _WS.split(masked.strip())
    if parts == [""]:
        return [], []
    raw_tokens = parts[0::2]
    raw_seps = parts[1::2]
    tokens = [raw_tokens[0]]
    seps: list[str] = []
    for tok, sep in zip(raw_tokens[1:], raw_seps, strict=True):
        if tok == tokens[-1] and WILDCARD in tok:
            continue
        tokens.append(tok)
        seps.append(sep)
    if len(tokens) > max_tokens:
        tokens = [*tokens[: max_tokens - 1], WILDCARD]
        seps = seps[: max_tokens - 1]
    return tokens, seps
