"""Log anomaly detection: novel templates, frequency bursts and silences, session anomalies."""

from opsloop.detect.logs.count_rules import CountRuleModel
from opsloop.detect.logs.frequency import FrequencyDetector
from opsloop.detect.logs.novelty import NoveltyScorer
from opsloop.detect.logs.sessions import HDFS_BLOCK, Session, SessionGrouper
from opsloop.detect.logs.transitions import TransitionModel

__all__ = [
    "HDFS_BLOCK",
    "CountRuleModel",
    "FrequencyDetector",
    "NoveltyScorer",
    "Session",
    "SessionGrouper",
    "TransitionModel",
]
