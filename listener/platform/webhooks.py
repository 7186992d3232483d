"""Webhooks, managed: `api.webhooks` in-process (create, list, get, pause, resume, delete, deliveries).

A webhook is an agent like any other: its cursor is an agent's cursor named `webhook:<id>`, set at the
log's head when it is created (events are a broadcast: it gets those from then on), and moved by its
delivery (listener/platform/webhook_delivery.py) past each event it is done with. Pausing keeps the
cursor; deleting drops it with the webhook's deliveries. Each change wakes this process's deliverer;
other replicas see it at their next poll.

Webhooks are the admins': the REST routes (webhook_routes.py) take only the admin role, since a
webhook sees every event, whoever's job it is about.
"""

from __future__ import annotations

import builtins
import secrets

import anyio

from listener.models import new_id
from listener.platform.store.base import Store, StoredWebhook, webhook_not_found
from listener.types import Clock
from listener.webhooks import (
    NewWebhook,
    Webhook,
    WebhookCreate,
    WebhookDelivery,
    WebhookDeliveryQuery,
    WebhooksApi,
    WebhookStatus,
)

__all__ = ["Changes", "WebhookService", "cursor_name"]

SECRET_PREFIX = "whsec_"


def cursor_name(webhook_id: str) -> str:
    """The agent cursor of a webhook (an agent of REST users is `user/agent`, so the two never meet)."""
    return f"webhook:{webhook_id}"


class Changes:
    """Wakes this process's deliverer when a webhook is created, paused, resumed or deleted here."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        """Until the next change, or `timeout` seconds (other replicas' changes are seen then)."""
        with anyio.move_on_after(timeout):
            await self._event.wait()
        self._event = anyio.Event()


class WebhookService(WebhooksApi):
    """`api.webhooks` in-process (the signatures are WebhooksApi's)."""

    def __init__(self, store: Store, clock: Clock, actor: str | None, changes: Changes) -> None:
        self._store = store
        self._clock = clock
        self._actor = actor
        self.changes = changes

    async def _create(self, spec: WebhookCreate) -> NewWebhook:
        now = self._clock.now()
        webhook = Webhook(id=new_id("wh"), url=spec.url, topics=spec.topics, filter=spec.filter,
                          description=spec.description, created_by=self._actor, created_at=now, updated_at=now)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        await self._store.insert_webhook(StoredWebhook(webhook.id, secret, _doc(webhook)), cursor_name(webhook.id))
        self.changes.set()
        return NewWebhook(webhook=await self._get(webhook.id), secret=secret)

    async def _list(self) -> builtins.list[Webhook]:
        stored, cursors = await self._store.webhooks(), await self._store.cursors()
        return [_webhook(s, cursors.get(cursor_name(s.id))) for s in stored]

    async def _get(self, webhook_id: str) -> Webhook:
        stored = await self._store.get_webhook(webhook_id)
        return _webhook(stored, await self._store.get_cursor(cursor_name(webhook_id)))

    async def _set_status(self, webhook_id: str, status: WebhookStatus) -> Webhook:
        webhook = await self._get(webhook_id)
        if webhook.status is not status:
            webhook = webhook.model_copy(update={"status": status, "updated_at": self._clock.now()})
            await self._store.put_webhook(webhook_id, _doc(webhook))
            self.changes.set()
        return webhook

    async def _delete(self, webhook_id: str) -> None:
        if not await self._store.delete_webhook(webhook_id, cursor_name(webhook_id)):
            raise webhook_not_found(webhook_id)
        self.changes.set()

    async def _deliveries(self, webhook_id: str, query: WebhookDeliveryQuery) -> builtins.list[WebhookDelivery]:
        await self._store.get_webhook(webhook_id)  # NotFound for an unknown webhook, not an empty list
        rows = await self._store.webhook_deliveries(webhook_id, query.limit)
        return [WebhookDelivery.model_validate({**doc, "id": pos}) for pos, doc in rows]


def _doc(webhook: Webhook) -> dict[str, object]:
    return webhook.model_dump(mode="json", exclude={"cursor"})


def _webhook(stored: StoredWebhook, cursor: int | None) -> Webhook:
    return Webhook.model_validate({**stored.doc, "cursor": cursor})
