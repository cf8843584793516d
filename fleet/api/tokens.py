"""Who am I, token management (admin) and the audit log.

Every token change is written to the store's audit log (actor, action, target, when).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request

from fleet.api.auth import NAME_PATTERN, Admin, Role, TokenError, TokenRegistry, Viewer
from fleet.api.models import AuditOut, TokenIn, TokenIssued, TokenOut, WhoAmI
from fleet.api.sites import store_of

router = APIRouter(tags=["tokens"])


def registry(request: Request) -> TokenRegistry:
    return request.app.state.ctx.tokens  # type: ignore[no-any-return]


async def audit(request: Request, actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
    store = store_of(request)
    async with store.transaction() as conn:
        await store.audit(conn, actor, action, target, detail)


@router.get("/whoami", summary="The caller's token name and role")
async def whoami(principal: Viewer) -> WhoAmI:
    return WhoAmI(name=principal.name, role=principal.role)


@router.get("/tokens", summary="Every token (names and roles, never secrets); admin")
async def list_tokens(principal: Admin, request: Request) -> list[TokenOut]:
    return [TokenOut(name=t.name, role=t.role, created_at=t.created_at, created_by=t.created_by)
            for t in registry(request).list()]


@router.post("/tokens", status_code=201, summary="Issue a token (admin); the secret is returned once; audited",
             responses={409: {"description": "a token with that name exists"}})
async def issue_token(principal: Admin, request: Request, body: TokenIn) -> TokenIssued:
    tokens = registry(request)
    try:
        secret = tokens.issue(body.name, body.role, created_by=principal.name)
    except TokenError as exc:
        raise HTTPException(409, str(exc)) from None
    token = tokens.get(body.name)
    assert token is not None
    await audit(request, principal.name, "token.issue", body.name, {"role": body.role.value})
    return TokenIssued(name=token.name, role=token.role, created_at=token.created_at,
                       created_by=token.created_by, token=secret)


@router.delete("/tokens/{name}", summary="Revoke a token (admin); audited",
               responses={404: {"description": "no such token"}, 409: {"description": "the last admin token"}})
async def revoke_token(principal: Admin, request: Request,
                       name: Annotated[str, Path(pattern=NAME_PATTERN)]) -> TokenOut:
    tokens = registry(request)
    token = tokens.get(name)
    if token is None:
        raise HTTPException(404, f"no token named {name!r}")
    if token.role is Role.admin and sum(t.role is Role.admin for t in tokens.list()) == 1:
        raise HTTPException(409, "refusing to revoke the last admin token")
    tokens.revoke(name)
    await audit(request, principal.name, "token.revoke", name, {"role": token.role.value})
    return TokenOut(name=token.name, role=token.role, created_at=token.created_at, created_by=token.created_by)


@router.get("/audit", summary="The audit log, newest first")
async def audit_log(
    principal: Viewer,
    request: Request,
    actor: Annotated[str | None, Query(max_length=100, pattern=r"^[^\x00]+$")] = None,
    target: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[AuditOut]:
    rows = await store_of(request).list_audit(actor=actor, target=target, limit=limit, offset=offset)
    return [AuditOut.model_validate(r) for r in rows]
