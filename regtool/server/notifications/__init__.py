"""Webhook notifications as distribution sends them: handlers `record` what happened
(`events`), the middleware turns a successful request's records into events
(`middleware`), and each endpoint delivers them from a bounded queue in a thread of its
own (`endpoint`), so delivery never holds up a request."""

from regtool.server.notifications.endpoint import Endpoint, Notifier
from regtool.server.notifications.events import EVENTS_MEDIA_TYPE, Event, Target, record
from regtool.server.notifications.middleware import NotifyMiddleware

__all__ = [
    "EVENTS_MEDIA_TYPE",
    "Endpoint",
    "Event",
    "Notifier",
    "NotifyMiddleware",
    "Target",
    "record",
]
