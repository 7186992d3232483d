"""The webhooks' REST routes under /api/v1/webhooks, in the one route table (routes.py's `route`).

Admins only: a webhook sees every event, whoever's job it is about, so a member or an agent is
answered 403. The secret is in the answer of the create alone.
"""

from __future__ import annotations

from listener.platform.auth import Role
from listener.platform.routes import Call, Items, Reply, route
from listener.webhooks import NewWebhook, Webhook, WebhookCreate, WebhookDelivery, WebhookDeliveryQuery

__all__ = ["ADMINS"]

ADMINS = frozenset({Role.ADMIN})


@route("POST", "/webhooks", tag="webhooks", body=WebhookCreate, response=NewWebhook, status=201, roles=ADMINS)
async def create_webhook(call: Call) -> Reply:
    """Register a URL for the events on some topics that match a filter; answers its signing secret, once."""
    spec: WebhookCreate = call.body
    new = await call.api.webhooks.create(url=spec.url, topics=spec.topics, filter=spec.filter,
                                         description=spec.description)
    return Reply(new, status=201, headers={"Location": f"/api/v1/webhooks/{new.webhook.id}"})


@route("GET", "/webhooks", tag="webhooks", response=Items[Webhook], roles=ADMINS)
async def list_webhooks(call: Call) -> Items[Webhook]:
    """Every webhook, oldest first, with where each stands in the log (its cursor)."""
    return Items[Webhook](items=await call.api.webhooks.list())


@route("GET", "/webhooks/{webhookId}", tag="webhooks", response=Webhook, roles=ADMINS)
async def get_webhook(call: Call) -> Webhook:
    """One webhook (never its secret)."""
    return await call.api.webhooks.get(call.param("webhookId"))


@route("POST", "/webhooks/{webhookId}/pause", tag="webhooks", response=Webhook, roles=ADMINS)
async def pause_webhook(call: Call) -> Webhook:
    """Stop delivering; the webhook keeps its place in the log and delivers from there on resume."""
    return await call.api.webhooks.pause(call.param("webhookId"))


@route("POST", "/webhooks/{webhookId}/resume", tag="webhooks", response=Webhook, roles=ADMINS)
async def resume_webhook(call: Call) -> Webhook:
    """Deliver again, from the first event after its cursor."""
    return await call.api.webhooks.resume(call.param("webhookId"))


@route("DELETE", "/webhooks/{webhookId}", tag="webhooks", status=204, roles=ADMINS)
async def delete_webhook(call: Call) -> None:
    """Delete a webhook with its cursor and its recorded deliveries."""
    await call.api.webhooks.delete(call.param("webhookId"))


@route("GET", "/webhooks/{webhookId}/deliveries", tag="webhooks", query=WebhookDeliveryQuery,
       response=Items[WebhookDelivery], roles=ADMINS)
async def webhook_deliveries(call: Call) -> Items[WebhookDelivery]:
    """The latest delivery attempts, newest first: status code or error, duration and attempt number."""
    q: WebhookDeliveryQuery = call.query
    return Items[WebhookDelivery](items=await call.api.webhooks.deliveries(call.param("webhookId"), limit=q.limit))
