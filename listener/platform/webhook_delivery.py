"""Webhooks, delivered: each matching event POSTed from the log, signed, retried, in order, across restarts.

Every platform process runs a deliverer (`Platform.open(webhooks=DeliverySettings())`, the default,
beside the system agent). For each active webhook it holds, it runs a Runner of one handler (the
webhook's topics and filter, as `Listener.on` takes them) with `concurrency=1` on the event log from
the webhook's cursor. The handler POSTs the event (`Event.to_json`, as the log stores it) and, until
the receiver answers 2xx, records the failed attempt and tries again after an exponential backoff
(`backoff * factor ** (attempt - 1)`, capped at `max_backoff`), forever: a failing delivery holds back
that webhook's later events and no other webhook's, until an admin pauses or deletes it. The Runner
moves the webhook's cursor past the events it is done with (those not for the webhook too).

Delivery is **at least once**, in order per webhook. The cursor moves after the receiver's 2xx, so a
process killed between the two (the Runner saves the cursor at most every 0.2 s, and at every
orderly stop) sends those last events again when a process takes the webhook up: receivers drop
repeats by `Listener-Event-Id`. An orderly stop (pause, shutdown) lets the attempt under way end
(at most `timeout`), saves the cursor and sends nothing twice.

**Replicas** (PostgreSQL): one replica delivers each webhook at a time. A replica takes a webhook's
lease in the store (`lease_webhook`: one UPDATE that succeeds only if the lease is free, its own, or
run out) and renews it every `poll` seconds; a replica that stops releases its leases, and one that
dies loses them after `lease` seconds, when another replica takes the webhook over from its cursor.
So each event goes to a webhook once, but for the at-least-once repeats above, and one more case: a
replica stalled past its lease while another took over may finish the attempt it had started.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import anyio
from anyio.abc import TaskGroup, TaskStatus

from listener.errors import Invalid, NotFound
from listener.listener import Listener
from listener.models import Event
from listener.platform.store.base import StoredWebhook
from listener.platform.webhooks import cursor_name
from listener.runner import Runner
from listener.tasks import task_scope
from listener.webhooks import SIGNATURE_HEADER, WebhookStatus, sign

if TYPE_CHECKING:
    from listener.platform import Platform

__all__ = ["Deliverer", "DeliverySettings", "running"]

log = logging.getLogger("listener.webhooks")

_ANSWER_KEPT = 64 * 1024  # bytes of a receiver's answer read (and dropped) before the connection is reused
_ERROR_KEPT = 500  # characters of an error kept with an attempt


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How webhooks are delivered. Tests pass `sleep` (the backoff's wait) to move on at once.

    Args:
        timeout: seconds an attempt may take, connecting to the answer (then it failed: a timeout).
        backoff, factor, max_backoff: the wait before attempt n+1 is `backoff * factor ** (n - 1)`, at most
            `max_backoff` seconds.
        lease: seconds a replica's hold on a webhook lasts unless renewed (every `poll`).
        poll: seconds between looks at the webhooks table for other replicas' changes and lapsed leases.
        keep: delivery attempts kept per webhook (older ones are deleted).
    """

    timeout: float = 10.0
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 600.0
    lease: float = 30.0
    poll: float = 1.0
    keep: int = 200
    sleep: Callable[[float], Awaitable[None]] = field(default=anyio.sleep, compare=False)

    def __post_init__(self) -> None:
        for name, low, high in (("timeout", 0.001, 300), ("backoff", 0, 86_400), ("factor", 1, 100),
                                ("max_backoff", 0, 86_400), ("poll", 0.001, 3600)):
            value = getattr(self, name)
            if not low <= value <= high:
                raise Invalid(f"{name}: must be between {low:g} and {high:g}, not {value!r}.",
                              details=[{"field": name, "message": "out of range"}])
        if self.lease <= max(self.poll, self.timeout):
            raise Invalid(f"lease: must be longer than poll ({self.poll:g}s) and timeout ({self.timeout:g}s), "
                          f"or a replica's hold lapses while it delivers; not {self.lease:g}.",
                          details=[{"field": "lease", "message": "too short"}])
        if self.keep < 1:
            raise Invalid(f"keep: must be at least 1, not {self.keep}.", details=[{"field": "keep",
                                                                                  "message": "too small"}])

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1, 2, ...)."""
        return float(min(self.backoff * self.factor ** min(attempt - 1, 64), self.max_backoff))


@dataclass(eq=False)
class _Delivering:
    """A webhook this process delivers now: its runner, and whether it is being stopped."""

    webhook: StoredWebhook
    runner: Runner | None = None
    stopping: bool = False
    deleted: bool = False

    def stop(self, *, deleted: bool = False) -> None:
        self.stopping = True
        self.deleted = self.deleted or deleted
        if self.runner is not None:
            self.runner.stop()


class Deliverer:
    """Delivers the webhooks whose lease this process holds; see the module's docstring."""

    def __init__(self, platform: Platform, settings: DeliverySettings, session: aiohttp.ClientSession) -> None:
        self.platform = platform
        self.settings = settings
        self.session = session
        self.owner = f"dl_{secrets.token_hex(8)}"
        """This process's name in the leases it holds."""
        self.delivering: dict[str, _Delivering] = {}
        self._moved = anyio.Event()

    def _moved_on(self) -> None:
        self._moved.set()
        self._moved = anyio.Event()

    async def wait_delivering(self, webhook_id: str, delivering: bool = True) -> None:
        """Until this process delivers `webhook_id` (its runner reads the log), or with False, no longer does."""
        while (webhook_id in self.delivering and self.delivering[webhook_id].runner is not None) != delivering:
            await self._moved.wait()

    @property
    def _changes(self) -> Any:
        return self.platform.api.webhooks.changes

    def _now(self) -> float:
        return self.platform.clock.now().timestamp()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take up, renew and give up webhooks until cancelled (a store error is logged, then tried again)."""
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                try:
                    await self.sync(tg)
                except Exception:
                    log.exception("Could not read or lease the webhooks; trying again in %gs.", self.settings.poll)
                await self._changes.wait(self.settings.poll)

    async def sync(self, tg: TaskGroup) -> None:
        """Stop what is paused, deleted or leased away; start the active webhooks whose lease this process takes."""
        store = self.platform.store
        webhooks = {w.id: w for w in await store.webhooks()}
        now = self._now()
        for webhook_id, delivering in list(self.delivering.items()):
            if delivering.stopping:
                continue
            webhook = webhooks.get(webhook_id)
            if webhook is None:
                delivering.stop(deleted=True)
            elif webhook.doc.get("status") != WebhookStatus.ACTIVE or not await store.lease_webhook(
                    webhook_id, self.owner, now, now + self.settings.lease):
                delivering.stop()
        for webhook_id, webhook in webhooks.items():
            if webhook_id in self.delivering or webhook.doc.get("status") != WebhookStatus.ACTIVE:
                continue
            if await store.lease_webhook(webhook_id, self.owner, now, now + self.settings.lease):
                self.delivering[webhook_id] = delivering = _Delivering(webhook)
                await tg.start(self._deliver, delivering)
                self._moved_on()

    async def _deliver(self, delivering: _Delivering, *, task_status: TaskStatus[None]) -> None:
        store, webhook = self.platform.store, delivering.webhook
        name = cursor_name(webhook.id)
        try:
            start = await store.get_cursor(name)
            if start is None:  # made before its cursor (or the row was lost): from now on, as a new agent
                start = await store.head()

            async def save(seq: int) -> None:
                if not delivering.deleted:  # a deleted webhook's cursor is gone with it
                    await store.set_cursor(name, seq)

            async def post(event: Event) -> None:
                await self._until_delivered(webhook, event)

            listener = Listener(name)
            listener.on(list(webhook.doc["topics"]), dict(webhook.doc.get("filter") or {}), post)
            # One event at a time, so that they arrive in order; stopped, the one in flight is given up at once
            # (its retries too) and stays after the cursor, to be sent again.
            runner = Runner(listener, self.platform.api.as_actor(f"agent:{name}"), concurrency=1, grace=0,
                            save_cursor=save, agent=name)
            delivering.runner = runner
            if delivering.stopping:
                runner.stop()
            async with self.platform.eventlog.subscribe(start) as events:
                task_status.started()
                try:
                    await runner.run(events, start=start)
                except Exception:  # the log could not be read (a lost database): taken up again at a next poll
                    log.exception("Delivering webhook %s stopped; it starts again from its cursor.", webhook.id)
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    if delivering.deleted:  # what this delivery wrote after the webhook was deleted goes too
                        await store.delete_webhook(webhook.id, name)
                    else:
                        await store.release_webhook(webhook.id, self.owner)
                except Exception:  # a lease runs out by itself
                    log.warning("Could not release webhook %s.", webhook.id, exc_info=True)
                self.delivering.pop(webhook.id, None)
                self._moved_on()
                self._changes.set()  # a webhook resumed meanwhile starts again at once

    async def _until_delivered(self, webhook: StoredWebhook, event: Event) -> None:
        body = event.to_json().encode()
        attempt = 1
        while True:
            # An attempt under way ends (within `timeout`) even when the webhook is paused or the process stops,
            # so that one the receiver took is not sent again; a wait for the next attempt is cut short.
            with anyio.CancelScope(shield=True):
                delivered = await self.attempt(webhook, event, body, attempt)
            if delivered:
                return
            await self.settings.sleep(self.settings.delay(attempt))
            attempt += 1

    async def attempt(self, webhook: StoredWebhook, event: Event, body: bytes, attempt: int) -> bool:
        """POST `body` once and record how it went; True if the receiver answered 2xx."""
        timestamp = int(self._now())
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(webhook.secret, timestamp, body),
                   "Listener-Webhook-Id": webhook.id, "Listener-Event-Id": event.id,
                   "Listener-Delivery-Attempt": str(attempt)}
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.settings.timeout):
                async with self.session.post(str(webhook.doc["url"]), data=body, headers=headers,
                                             allow_redirects=False) as response:
                    status = response.status
                    await response.content.read(_ANSWER_KEPT)
            if not 200 <= status < 300:
                error = f"The receiver answered {status} {response.reason or ''}".rstrip() + "."
        except TimeoutError:
            error = f"No answer within {self.settings.timeout:g}s."
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:_ERROR_KEPT] or type(exc).__name__
        duration = (time.perf_counter() - started) * 1000
        if error is not None:
            log.warning("Webhook %s: attempt %d of event %s (seq %d) failed: %s", webhook.id, attempt, event.id,
                        event.seq, error)
        doc = {"webhookId": webhook.id, "eventId": event.id, "eventSeq": event.seq, "topic": event.topic,
               "attempt": attempt, "ok": error is None, "statusCode": status, "error": error,
               "durationMs": round(duration, 3), "at": self.platform.clock.now().isoformat()}
        try:
            await self.platform.store.add_webhook_delivery(webhook.id, doc, self.settings.keep)
        except NotFound:
            pass
        except Exception:  # the record is for people to look at; the delivery itself is what counts
            log.warning("Could not record an attempt of webhook %s.", webhook.id, exc_info=True)
        return error is None


@asynccontextmanager
async def running(platform: Platform, settings: DeliverySettings) -> AsyncIterator[Deliverer]:
    """Deliver webhooks while the block runs (Platform.open does); at its end, save the cursors and release."""
    from listener import __version__

    session = aiohttp.ClientSession(headers={"User-Agent": f"Listener-Webhooks/{__version__}"},
                                    timeout=aiohttp.ClientTimeout(total=settings.timeout))
    try:
        deliverer = Deliverer(platform, settings, session)
        async with task_scope() as tg:
            await tg.start(deliverer.run)
            yield deliverer
    finally:
        with anyio.CancelScope(shield=True):
            await session.close()
