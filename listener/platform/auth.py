"""Users, roles and bearer tokens.

Tokens are random (256 bits), shown once, and stored only as their SHA-256: a
token with that much entropy needs no slow hash, and a stolen database gives no
usable token.

A user's token can be revoked (the user stays, with no working token, so the jobs
it created still name it) or rotated (a new token, shown once; the old one stops
working). A found token is cached so that auth stays off the database, but only for
`AUTH_CACHE_SECONDS`: the replica that revokes or rotates drops it from its cache at
once, and every other process sharing the store (PostgreSQL replicas, a server
whose database `listener users revoke` changed) reads the token again within that
bound. The bound, not a marker read on every request, because auth runs on every
request and every worker-channel frame and a read there would cost a database
round trip each.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from pydantic import Field

from listener.errors import Conflict, Invalid, Unauthorized
from listener.models import Model, new_id, parse
from listener.platform.store.base import Store, StoredUser
from listener.types import Clock

__all__ = ["AUTH_CACHE_SECONDS", "Role", "User", "UserCreate", "Users", "hash_token", "new_token"]

TOKEN_PREFIX = "lst_"
AUTH_CACHE_SECONDS = 2.0
"""How long a found token is trusted without reading the store again: the longest a token revoked or rotated
by another process (another replica, the CLI on the database) still works here."""
_REVOKED = "revoked:"
"""A revoked user's token hash: `revoked:<user id>`, unique as the column must be, and never a SHA-256
hexdigest (64 hex digits), so no token finds it."""


class Role(enum.StrEnum):
    """What a user may do.

    admin: sees and manages every job and resource. member: sees only the jobs it
    created. agent: what listener processes use; sees and operates every job.
    """

    ADMIN = "admin"
    MEMBER = "member"
    AGENT = "agent"


class User(Model):
    id: str
    name: str
    role: Role
    created_at: datetime
    rotated_at: datetime | None = None
    """When its token was last replaced by a new one (`rotate`); None if it still has its first."""
    revoked_at: datetime | None = None
    """When its token was revoked: since then it has no working token, until a rotate gives it one."""


USER_NAME = r"^[A-Za-z0-9_.@\-]+$"


class UserCreate(Model):
    name: str = Field(min_length=1, max_length=100, pattern=USER_NAME)
    role: Role = Role.MEMBER


class UserName(Model):
    name: str = Field(min_length=1, max_length=100, pattern=USER_NAME)


def _works(user: StoredUser) -> bool:
    return not user.token_hash.startswith(_REVOKED)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LINK_TTL = 300
"""Seconds a signed download link stays good."""
LINK_PARAMS = frozenset({"expires", "user", "signature"})


class Users:
    """Creates users and finds the user a bearer token belongs to."""

    def __init__(self, store: Store, clock: Clock, *, cache_size: int = 1024,
                 cache_seconds: float = AUTH_CACHE_SECONDS) -> None:
        self._store = store
        self._clock = clock
        # A found user by token hash, and until when it is trusted without reading the store (see the module's doc).
        self._cache: OrderedDict[str, tuple[User, datetime]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_for = timedelta(seconds=cache_seconds)
        self._link_key: bytes | None = None

    async def create(self, name: str, role: Role | str = Role.MEMBER, *, token: str | None = None) -> tuple[User, str]:
        """Create a user; returns it and its bearer token, which is not stored and cannot be shown again."""
        spec = parse(UserCreate, {"name": name, "role": role}, what="user")
        if token is not None and len(token) < 16:
            raise Invalid("token: a token must be at least 16 characters long.",
                          details=[{"field": "token", "message": "too short"}])
        token = token or new_token()
        user = User(id=new_id("us"), name=spec.name, role=spec.role, created_at=self._clock.now())
        await self._store.insert_user(StoredUser(user.id, user.name, user.role.value, hash_token(token),
                                                 user.model_dump(mode="json")))
        return user, token

    async def authenticate(self, token: str | None) -> User:
        """The user a bearer token belongs to; raises Unauthorized for a missing, unknown or revoked token."""
        if not token:
            raise Unauthorized("A bearer token is required: send 'Authorization: Bearer <token>'.")
        return await self.by_digest(hash_token(token))

    async def by_digest(self, digest: str) -> User:
        """`authenticate` for a caller that keeps its token's SHA-256 (an open socket checking it before every
        frame, for which hashing again would be most of the check's cost)."""
        now = self._clock.now()
        cached = self._cache.get(digest)
        if cached is not None and now < cached[1]:
            return cached[0]
        stored = await self._store.find_user(token_hash=digest)
        # Compare digests in constant time, so a near-miss takes as long as a miss.
        if stored is None or not hmac.compare_digest(stored.token_hash, digest) or not _works(stored):
            self._cache.pop(digest, None)
            raise Unauthorized("The bearer token is not valid.")
        user = User.model_validate(stored.doc)
        self._cache[digest] = (user, now + self._cache_for)
        self._cache.move_to_end(digest)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return user

    async def all(self) -> list[User]:
        """Every user, by name (tokens are not kept, so none is shown)."""
        return [User.model_validate(stored.doc) for stored in await self._store.list_users()]

    async def revoke(self, name: str) -> User:
        """Revoke user `name`'s token: it stops working at once here, and within AUTH_CACHE_SECONDS on every
        other process sharing the store (its open streams and worker channels are refused at their next frame).

        The user stays (its jobs still name it), with no working token until `rotate` gives it one; revoking
        a revoked user changes nothing. Raises NotFound for an unknown name, and Conflict for the last admin
        whose token works: revoking it would leave no one able to manage users over the API.
        """
        now = self._clock.now()

        def revoke(stored: StoredUser, admins: list[StoredUser]) -> StoredUser:
            if stored.token_hash.startswith(_REVOKED):
                return stored
            if stored.role == Role.ADMIN and not [a for a in admins if a.id != stored.id and _works(a)]:
                raise Conflict(f"Cannot revoke {name}'s token: {name} is the last admin with a working token. "
                               "Create another admin (or rotate a revoked one's token) first.",
                               details={"name": name, "move": "revoke", "reason": "last_admin"})
            doc = {**stored.doc, "revokedAt": now.isoformat()}
            return StoredUser(stored.id, stored.name, stored.role, _REVOKED + stored.id, doc)

        return await self._change(name, revoke)

    async def rotate(self, name: str) -> tuple[User, str]:
        """Give user `name` a new token (also one whose token was revoked) and return it with the user: shown this
        once. The old token stops working as `revoke` says. Raises NotFound for an unknown name."""
        token = new_token()
        now = self._clock.now()

        def rotate(stored: StoredUser, admins: list[StoredUser]) -> StoredUser:
            doc = {**stored.doc, "rotatedAt": now.isoformat(), "revokedAt": None}
            return StoredUser(stored.id, stored.name, stored.role, hash_token(token), doc)

        return await self._change(name, rotate), token

    async def _change(self, name: str, change: Callable[[StoredUser, list[StoredUser]], StoredUser]) -> User:
        spec = parse(UserName, {"name": name}, what="user")
        old: list[str] = []

        def changing(stored: StoredUser, admins: list[StoredUser]) -> StoredUser:
            old.append(stored.token_hash)
            return change(stored, admins)

        new = await self._store.change_user(spec.name, changing)
        self._cache.pop(old[0], None)  # here at once; elsewhere once their cached entry runs out
        return User.model_validate(new.doc)

    async def sign(self, user: User, path: str, *, ttl_seconds: int = LINK_TTL) -> tuple[str, datetime]:
        """A link to GET `path` as `user` without a bearer token (a download started from a web page),
        good for `ttl_seconds`; returns the path with its signature and when it expires."""
        expires = int(self._clock.now().timestamp()) + ttl_seconds
        signature = await self._signature(unquote(path), user.name, expires)
        link = f"{path}?expires={expires}&user={quote(user.name, safe='')}&signature={signature}"
        return link, datetime.fromtimestamp(expires, tz=UTC)

    async def from_link(self, path: str, query: Mapping[str, str]) -> User:
        """The user a signed link was made for; Unauthorized if it is forged, altered or expired."""
        refused = Unauthorized("The link is not valid or has expired: get a new one.")
        try:
            expires, name, signature = int(query["expires"]), query["user"], query["signature"]
        except (KeyError, ValueError):
            raise refused from None
        if expires <= self._clock.now().timestamp():
            raise refused
        if not hmac.compare_digest(signature, await self._signature(path, name, expires)):
            raise refused
        user = await self.get(name)
        if user is None or user.revoked_at is not None:
            raise refused
        return user

    async def _signature(self, path: str, name: str, expires: int) -> str:
        if self._link_key is None:
            self._link_key = (await self._store.secret("links")).encode()
        message = f"GET\n{path}\n{name}\n{expires}".encode()
        return hmac.new(self._link_key, message, hashlib.sha256).hexdigest()

    async def get(self, name: str) -> User | None:
        stored = await self._store.find_user(name=name)
        return None if stored is None else User.model_validate(stored.doc)

    async def count(self) -> int:
        return await self._store.count_users()

    async def ensure_admin(self, token: str | None = None, *, name: str = "admin") -> str | None:
        """On a database with no users, create an admin (with `token` if given) and return its token.

        Returns None when users exist already: tokens are shown once, at creation.
        """
        if await self.count():
            return None
        try:
            _, token = await self.create(name, Role.ADMIN, token=token)
        except Conflict:
            return None  # another replica, starting at the same time, created it first
        return token
