"""Webhooks' wire models, the `api.webhooks` signatures, and how a receiver checks a delivery's signature.

An admin registers a URL for topics and a filter, as `Listener.on` takes them:

```python
new = await api.webhooks.create(url="https://example.com/hooks", topics=["job:failed"],
                                filter={"job": "workbook:*"})
new.secret          # shown this once: keep it where the receiver can read it
```

Each matching event is POSTed to the URL as JSON, the event as the log stores it (`Event.to_json`),
in order, with these headers:

| header | value |
| --- | --- |
| `Listener-Signature` | `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the webhook's secret>` |
| `Listener-Webhook-Id` | the webhook's id (`wh_...`) |
| `Listener-Event-Id` | the event's id (`ev_...`): the same on every attempt, so a receiver can drop repeats |
| `Listener-Delivery-Attempt` | 1, 2, ... for this event |

A receiver verifies a delivery before it trusts it (`verify_signature` does all of this):

```python
import hashlib, hmac, time

def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    t, signature = parts.get("t", ""), parts.get("v1", "")
    if not t.isdigit() or abs(time.time() - int(t)) > tolerance:    # too old (or too new): a replay
        return False
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature)                  # constant time
```

Sign the body's bytes exactly as they came, before parsing them. Delivery is at least once: a
receiver that must not act twice keeps the event ids it has handled.
"""

from __future__ import annotations

import abc
import builtins
import enum
import hashlib
import hmac
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from listener.models import Model, parse
from listener.topics import compile_filter, compile_topic

__all__ = [
    "SIGNATURE_HEADER",
    "NewWebhook",
    "Webhook",
    "WebhookCreate",
    "WebhookDelivery",
    "WebhookDeliveryQuery",
    "WebhookStatus",
    "WebhooksApi",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "Listener-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Listener-Signature` header of `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(secret: str, header: str, body: bytes, *, tolerance: float = 300,
                     now: float | None = None) -> bool:
    """Whether `header` (a `Listener-Signature`) signs `body` with `secret`, made within `tolerance`
    seconds of `now` (default: the time now). Compares in constant time."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, signature = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, int(timestamp), body).partition(",v1=")[2]
    return hmac.compare_digest(expected, signature)


class WebhookStatus(enum.StrEnum):
    """An active webhook delivers; a paused one keeps its place in the log and delivers again on resume."""

    ACTIVE = "active"
    PAUSED = "paused"


class WebhookCreate(Model):
    """The arguments of `webhooks.create`: where to POST, which topics (globs) and which filter."""

    url: str = Field(min_length=1, max_length=2000)
    topics: list[str] = Field(min_length=1, max_length=50)
    filter: dict[str, Any] = Field(default_factory=dict)
    description: str | None = Field(None, max_length=500)

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            compile_topic(topic)  # Invalid is a ValueError: pydantic names the field
        return topics

    @field_validator("filter")
    @classmethod
    def _filter(cls, spec: dict[str, Any]) -> dict[str, Any]:
        compile_filter(spec)
        return spec


class Webhook(Model):
    """A registered webhook, with an id prefixed `wh_`. Its secret is shown only by `create`."""

    id: str
    url: str
    topics: list[str]
    filter: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None
    status: WebhookStatus = WebhookStatus.ACTIVE
    created_by: str | None = None
    created_at: datetime
    updated_at: datetime
    cursor: int | None = None
    """The seq of the last event this webhook is done with (delivered, or not for it)."""


class NewWebhook(Model):
    """A webhook just created, with its signing secret: shown this once, never again."""

    webhook: Webhook
    secret: str


class WebhookDelivery(Model):
    """One attempt to deliver one event: what the receiver answered, or why there was no answer."""

    id: int
    webhook_id: str
    event_id: str
    event_seq: int
    topic: str
    attempt: int
    ok: bool
    status_code: int | None = None
    error: str | None = None
    duration_ms: float
    at: datetime


class WebhookDeliveryQuery(Model):
    """The query of `webhooks.deliveries`: how many of the latest attempts."""

    limit: int = Field(50, ge=1, le=500)


class WebhooksApi(abc.ABC):
    """`api.webhooks` on either transport (admins only over HTTP): each call's signature is written here once.

    The in-process service (listener/platform/webhooks.py) and the HTTP client implement the
    underscored methods, which get the arguments already validated.
    """

    async def create(self, *, url: str, topics: str | builtins.list[str], filter: dict[str, Any] | None = None,
                     description: str | None = None) -> NewWebhook:
        """Register `url` for the events on `topics` (globs) that match `filter`, from now on.

        Returns the webhook and its signing secret (shown only now). Raises Invalid naming the
        field for a URL that is not http(s), a bad topic pattern or an unknown filter key.
        """
        spec = parse(WebhookCreate, {"url": url, "topics": [topics] if isinstance(topics, str) else topics,
                                     "filter": filter or {}, "description": description}, what="webhook")
        return await self._create(spec)

    async def list(self) -> builtins.list[Webhook]:
        """Every webhook, oldest first."""
        return await self._list()

    async def get(self, webhook_id: str) -> Webhook:
        """One webhook (NotFound for an unknown id)."""
        return await self._get(webhook_id)

    async def pause(self, webhook_id: str) -> Webhook:
        """Stop delivering; the webhook keeps its place in the log (its cursor)."""
        return await self._set_status(webhook_id, WebhookStatus.PAUSED)

    async def resume(self, webhook_id: str) -> Webhook:
        """Deliver again, from the first event after its cursor (those that came while it was paused too)."""
        return await self._set_status(webhook_id, WebhookStatus.ACTIVE)

    async def delete(self, webhook_id: str) -> None:
        """Delete a webhook, its cursor and its deliveries."""
        await self._delete(webhook_id)

    async def deliveries(self, webhook_id: str, *, limit: int = 50) -> builtins.list[WebhookDelivery]:
        """The webhook's latest delivery attempts, newest first (the store keeps the last few hundred)."""
        return await self._deliveries(webhook_id, parse(WebhookDeliveryQuery, {"limit": limit}, what="query"))

    @abc.abstractmethod
    async def _create(self, spec: WebhookCreate) -> NewWebhook: ...

    @abc.abstractmethod
    async def _list(self) -> builtins.list[Webhook]: ...

    @abc.abstractmethod
    async def _get(self, webhook_id: str) -> Webhook: ...

    @abc.abstractmethod
    async def _set_status(self, webhook_id: str, status: WebhookStatus) -> Webhook: ...

    @abc.abstractmethod
    async def _delete(self, webhook_id: str) -> None: ...

    @abc.abstractmethod
    async def _deliveries(self, webhook_id: str, query: WebhookDeliveryQuery) -> builtins.list[WebhookDelivery]: ...
