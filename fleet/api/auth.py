"""Bearer tokens with three roles, viewer < operator < admin.

A viewer reads everything; an operator also acknowledges alarms and pushes or rolls
back configuration; an admin also manages tokens. A token is a random secret shown
once when issued; only its SHA-256 is kept, in memory and (when a path is given) in a
JSON file written atomically with mode 0600, so a restarted API keeps its tokens.

Tokens live in a file rather than in the fleet store because the store's schema is
migrated by the store's owner and one API process serves the NOC; a ``tokens`` table
would be the step for several API instances behind a balancer.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


class Role(enum.StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class Token:
    """Who a request is: the token's name is the actor in the audit log."""

    name: str
    role: Role
    sha256: str
    created_at: float
    created_by: str


class TokenError(ValueError):
    """A token change that cannot be made (bad name, duplicate)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


class TokenRegistry:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._by_digest: dict[str, Token] = {}
        if self.path is not None and self.path.exists():
            doc = json.loads(self.path.read_text())
            for t in doc.get("tokens", []):
                token = Token(t["name"], Role(t["role"]), t["sha256"], float(t["created_at"]), t["created_by"])
                self._by_digest[token.sha256] = token

    def authenticate(self, secret: str) -> Token | None:
        return self._by_digest.get(_digest(secret))

    def list(self) -> list[Token]:
        return sorted(self._by_digest.values(), key=lambda t: t.name)

    def get(self, name: str) -> Token | None:
        return next((t for t in self._by_digest.values() if t.name == name), None)

    def issue(self, name: str, role: Role, *, created_by: str, secret: str | None = None) -> str:
        """A new token named ``name``; returns its secret (the only time it is seen).
        ``secret`` lets a deployment bring its own (e.g. a bootstrap admin token)."""
        if not _NAME.match(name):
            raise TokenError(f"name {name!r} must match {NAME_PATTERN}")
        if self.get(name) is not None:
            raise TokenError(f"a token named {name!r} exists already")
        secret = secret or "bl_" + secrets.token_urlsafe(32)
        if len(secret) < 16:
            raise TokenError("a token secret needs at least 16 characters")
        token = Token(name, role, _digest(secret), time.time(), created_by)
        self._by_digest[token.sha256] = token
        self._save()
        return secret

    def revoke(self, name: str) -> Token | None:
        token = self.get(name)
        if token is not None:
            del self._by_digest[token.sha256]
            self._save()
        return token

    def _save(self) -> None:
        if self.path is None:
            return
        doc = {"tokens": [{**asdict(t), "role": t.role.value} for t in self.list()]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=1)
        tmp.replace(self.path)


bearer = HTTPBearer(auto_error=False, description="A fleet API token: `Authorization: Bearer <token>`")


def require(role: Role) -> Callable[..., Awaitable[Token]]:
    """A dependency: the caller's token, 401 without a valid one, 403 below ``role``."""

    async def principal(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Token:
        registry: TokenRegistry = request.app.state.ctx.tokens
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
        token = registry.authenticate(credentials.credentials)
        if token is None:
            raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
        if not token.role.allows(role):
            raise HTTPException(403, f"this needs the {role.value} role; token {token.name!r} is {token.role.value}")
        return token

    return principal


Viewer = Annotated[Token, Depends(require(Role.viewer))]
Operator = Annotated[Token, Depends(require(Role.operator))]
Admin = Annotated[Token, Depends(require(Role.admin))]
