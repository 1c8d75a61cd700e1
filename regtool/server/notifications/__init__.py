"""Webhook notifications as distribution sends them: handlers `record` what happened
(`events`), a successful request's records become events (`request_events`), and each
endpoint delivers them from a bounded queue in a thread of its own (`endpoint`), so
delivery never holds up a request."""

from regtool.server.notifications.endpoint import Endpoint, Notifier
from regtool.server.notifications.events import EVENTS_MEDIA_TYPE, Event, Target, record

__all__ = [
    "EVENTS_MEDIA_TYPE",
    "Endpoint",
    "Event",
    "Notifier",
    "Target",
    "record",
]
