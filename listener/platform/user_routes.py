"""The REST routes an admin manages users with: list them, revoke a token, rotate one.

They join the route table of `routes.py` through its `route` decorator when this module is imported (the
server imports it), so the router, the worker channel's checks and the OpenAPI document see them as any other.
`GET /users/me` and `POST /users` stay beside the other routes every client uses.
"""

from __future__ import annotations

from listener.platform.auth import Role, User
from listener.platform.routes import Call, Items, NewUser, route

__all__ = ["list_users", "revoke_user", "rotate_user"]

ADMINS = frozenset({Role.ADMIN})


@route("GET", "/users", tag="users", response=Items[User], roles=ADMINS)
async def list_users(call: Call) -> Items[User]:
    """Every user by name: role, created, when its token was last rotated or revoked (tokens are never shown)."""
    return Items[User](items=await call.users.all())


@route("POST", "/users/{name}/revoke", tag="users", response=User, roles=ADMINS)
async def revoke_user(call: Call) -> User:
    """Revoke a user's token: REST, event streams and worker channels refuse it from their next request or frame.

    409 for the last admin with a working token; revoking a revoked user changes nothing.
    """
    return await call.users.revoke(call.param("name"))


@route("POST", "/users/{name}/rotate", tag="users", response=NewUser, roles=ADMINS)
async def rotate_user(call: Call) -> NewUser:
    """Give a user a new token, shown this once; the old one is refused as a revoked one is."""
    user, token = await call.users.rotate(call.param("name"))
    return NewUser(user=user, token=token)
