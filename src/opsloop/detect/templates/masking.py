r"""Variable masking: replace the parts of a log message that are obviously variable by ``<*>``.

One compiled regular expression, applied to the whole message in a single ``re.sub`` pass
(C speed, no per-token Python work). It is generic, the same for every system; what it masks,
in the order the alternatives are tried:

0. ``ctime``-like timestamps: optional weekday, month name, day, ``hh:mm:ss``, optional year;
1. MAC-like addresses: six or more hex pairs joined by ``:`` or ``-``;
2. IPv6-like addresses: three or more ``:``-joined hex groups containing a digit;
3. hex numbers: ``0x...`` or a run of 4+ hex characters with both a digit and a hex letter
   (``08b4``, ``3fa9c2e1``) standing alone between non-alphanumerics;
4. numbers: every remaining digit run, with a leading sign when it starts a word and with
   ``.``/``,``/``:`` joined digit groups kept together (decimals, IPv4 with port, times).

Every digit ends up inside a masked span, so the result depends only on *where* the digits
are, not on their values (the miner relies on this for its memo).

Digits *inside* words are masked without the letters around them, so ``blk_-6952`` becomes
``blk_<*>``, ``node-246`` becomes ``node-<*>`` and ``J12-U11`` becomes ``J<*>-U<*>``: the
constant shape of the token is kept, which keeps distinct templates apart.

>>> mask("Received block blk_-1608 of size 91178 from /10.250.10.6:40524")
'Received block blk_<*> of size <*> from /<*>'
>>> mask("BSSID changed to 5c:50:15:36:bc:03 on en0, t=0x1f")
'BSSID changed to <*> on en<*>, t=<*>'
>>> mask("no digits at all")
'no digits at all'
"""

from __future__ import annotations

import re

__all__ = ["WILDCARD", "mask"]

#: The placeholder for a variable, as in the log parsing literature.
WILDCARD = "<*>"

_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_MASK = re.compile(
    rf"(?:(?:{_DAYS}),? +)?(?:{_MONTHS}) +\d{{1,2}},? +\d{{1,2}}:\d\d:\d\d"
    r"(?:[.,]\d+)?(?: +\d{4})?"
    r"|"
    r"(?<![0-9A-Fa-f:])(?:[0-9A-Fa-f]{2}[:-]){5,}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:])"
    r"|(?<![0-9A-Za-z:])(?=[0-9A-Fa-f:]*\d)(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{1,4}"
    r"(?![0-9A-Za-z:])"
    r"|(?<![0-9A-Za-z])(?:[0-9][xX][0-9A-Fa-f]+|(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])"
    r"[0-9A-Fa-f]{4,})(?![0-9A-Za-z])"
    r"|(?:(?<![0-9A-Za-z])[-+])?\d+(?:[.,:]\d+)*",
    re.ASCII,
)
_HAS_DIGIT = re.compile(r"\d", re.ASCII)


def mask(content: str) -> str:
    """Return ``content`` with numbers, hex values and addresses replaced by ``<*>``.

    >>> mask("uid=0 euid=0 rhost=218.188.2.4")
    'uid=<*> euid=<*> rhost=<*>'
    """
    if _HAS_DIGIT.search(content) is None:
        return content
    return _MASK.sub(WILDCARD, content)
