"""Task-group helpers: background tasks that live as long as a `with` block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup

__all__ = ["task_scope"]


@asynccontextmanager
async def task_scope(*, cancel_on_exit: bool = True) -> AsyncIterator[TaskGroup]:
    """A task group whose tasks are cancelled when the block ends (or awaited, without `cancel_on_exit`).

    An exception from the block comes out as itself, not wrapped in an
    ExceptionGroup, so `async with Platform.open(): raise NotFound` raises NotFound.
    """
    try:
        async with anyio.create_task_group() as tg:
            yield tg
            if cancel_on_exit:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group.exceptions[0].__cause__
        raise
