"""Notifications for incidents: receivers, a routing tree and a non-blocking dispatcher.

* :mod:`~opsloop.act.notify.message` — :class:`Notification` and its payloads (generic webhook
  JSON schema v1, Slack blocks, e-mail);
* :mod:`~opsloop.act.notify.receivers` — :class:`WebhookReceiver`, :class:`SlackReceiver`,
  :class:`EmailReceiver` (each ``await send(n) -> DeliveryResult``);
* :mod:`~opsloop.act.notify.routing` — :func:`load_route` builds a :class:`Route` tree;
  ``route(labels, severity)`` names the receivers;
* :mod:`~opsloop.act.notify.dispatcher` — :class:`Dispatcher` queues per receiver, retries with
  backoff and records every :class:`DeliveryAttempt`; ``submit`` never blocks.
"""

from opsloop.act.notify.dispatcher import DeliveryAttempt, Dispatcher
from opsloop.act.notify.message import (
    SEVERITIES,
    STATUSES,
    Notification,
    build_email,
    email_content,
    slack_payload,
    webhook_payload,
)
from opsloop.act.notify.receivers import (
    DeliveryResult,
    EmailReceiver,
    Receiver,
    ReceiverConfigError,
    SlackReceiver,
    WebhookReceiver,
    receivers_from_config,
)
from opsloop.act.notify.routing import Route, RoutingError, load_route

__all__ = [
    "SEVERITIES",
    "STATUSES",
    "DeliveryAttempt",
    "DeliveryResult",
    "Dispatcher",
    "EmailReceiver",
    "Notification",
    "Receiver",
    "ReceiverConfigError",
    "Route",
    "RoutingError",
    "SlackReceiver",
    "WebhookReceiver",
    "build_email",
    "email_content",
    "load_route",
    "receivers_from_config",
    "slack_payload",
    "webhook_payload",
]
