"""opsloop's incident engine, pure core: alerts in, incidents and notification plans out.

Everything that detects something - log and metric anomalies, forecasts, model monitoring and
alerts from other tools - becomes an :class:`Alert` (``alert``, ``alertmanager`` parse the
payloads), is muted by silences (``silence``) or inhibition (``inhibit``, with label
``matchers``), placed into an incident with a reason (``correlate``, ``incident``,
``cooccur``) and notified about on Alertmanager's schedule (``grouping``). No I/O, no clock:
times are epoch seconds passed in by the caller.
"""

from opsloop.act.incidents.alert import (
    Alert,
    Severity,
    anomaly_severity,
    from_anomaly,
    label_fingerprint,
    max_severity,
    signal_kind,
)
from opsloop.act.incidents.alertmanager import (
    AlertmanagerBatch,
    PayloadError,
    parse_alertmanager,
    parse_generic,
    parse_payload,
    parse_time,
)
from opsloop.act.incidents.cooccur import CooccurrenceStats
from opsloop.act.incidents.correlate import (
    DEFAULT_GROUP_BY,
    Correlator,
    CorrelatorConfig,
    Decision,
    group_key,
)
from opsloop.act.incidents.grouping import GroupState, Notification, NotificationPlanner
from opsloop.act.incidents.incident import (
    IncidentAlert,
    IncidentStatus,
    IncidentView,
    LifecycleError,
    Link,
    acknowledge,
    add_alert,
    due_for_auto_resolve,
    expire_stale,
    merge,
    new_incident,
    resolve,
    split,
    unacknowledge,
)
from opsloop.act.incidents.inhibit import DEFAULT_RULES, InhibitRule, inhibited, inhibited_by
from opsloop.act.incidents.matchers import (
    Matcher,
    MatcherError,
    MatchType,
    matches_all,
    parse_matcher,
    parse_matchers,
)
from opsloop.act.incidents.silence import Silence, is_silenced, silenced_by

__all__ = [
    "DEFAULT_GROUP_BY",
    "DEFAULT_RULES",
    "Alert",
    "AlertmanagerBatch",
    "CooccurrenceStats",
    "Correlator",
    "CorrelatorConfig",
    "Decision",
    "GroupState",
    "IncidentAlert",
    "IncidentStatus",
    "IncidentView",
    "InhibitRule",
    "LifecycleError",
    "Link",
    "MatchType",
    "Matcher",
    "MatcherError",
    "Notification",
    "NotificationPlanner",
    "PayloadError",
    "Severity",
    "Silence",
    "acknowledge",
    "add_alert",
    "anomaly_severity",
    "due_for_auto_resolve",
    "expire_stale",
    "from_anomaly",
    "group_key",
    "inhibited",
    "inhibited_by",
    "is_silenced",
    "label_fingerprint",
    "matches_all",
    "max_severity",
    "merge",
    "new_incident",
    "parse_alertmanager",
    "parse_generic",
    "parse_matcher",
    "parse_matchers",
    "parse_payload",
    "parse_time",
    "resolve",
    "signal_kind",
    "silenced_by",
    "split",
    "unacknowledge",
]
