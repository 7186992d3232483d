"""Users, roles and bearer tokens.

Tokens are random (256 bits), shown once, and stored only as their SHA-256: a
token with that much entropy needs no slow hash, and a stolen database gives no
usable token.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from pydantic import Field

from listener.errors import Conflict, Invalid, Unauthorized
from listener.models import Model, new_id, parse
from listener.platform.store.base import Store, StoredUser
from listener.types import Clock

__all__ = ["Role", "User", "UserCreate", "Users", "hash_token", "new_token"]

TOKEN_PREFIX = "lst_"


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


class UserCreate(Model):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@\-]+$")
    role: Role = Role.MEMBER


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


LINK_TTL = 300
"""Seconds a signed download link stays good."""
LINK_PARAMS = frozenset({"expires", "user", "signature"})


class Users:
    """Creates users and finds the user a bearer token belongs to."""

    def __init__(self, store: Store, clock: Clock, *, cache_size: int = 1024) -> None:
        self._store = store
        self._clock = clock
        # Tokens never change, so a found user is cached by token hash to keep auth off the database.
        self._cache: OrderedDict[str, User] = OrderedDict()
        self._cache_size = cache_size
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
        """The user a bearer token belongs to; raises Unauthorized for a missing or unknown token."""
        if not token:
            raise Unauthorized("A bearer token is required: send 'Authorization: Bearer <token>'.")
        digest = hash_token(token)
        user = self._cache.get(digest)
        if user is None:
            stored = await self._store.find_user(token_hash=digest)
            # Compare digests in constant time, so a near-miss takes as long as a miss.
            if stored is None or not hmac.compare_digest(stored.token_hash, digest):
                raise Unauthorized("The bearer token is not valid.")
            user = User.model_validate(stored.doc)
            self._cache[digest] = user
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return user

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
        if user is None:
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
