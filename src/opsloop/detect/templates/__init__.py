"""Log template mining: masking, tokenisation, the streaming miner and its scoring.

>>> from opsloop.detect.templates import TemplateMiner
>>> TemplateMiner().learn_one("took 12 ms").template
'took <*> ms'
"""

from opsloop.detect.templates.masking import WILDCARD, mask
from opsloop.detect.templates.miner import Match, TemplateMiner, extract_params
from opsloop.detect.templates.scoring import grouping_accuracy, parsing_accuracy
from opsloop.detect.templates.tokenize import tokenize

__all__ = [
    "WILDCARD",
    "Match",
    "TemplateMiner",
    "extract_params",
    "grouping_accuracy",
    "mask",
    "parsing_accuracy",
    "tokenize",
]
