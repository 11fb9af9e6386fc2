"""Bearer tokens per role (DESIGN.md roles); a site token sees only its own patients."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

READ_ACROSS_SITES = frozenset({"admin", "auditor", "safety", "api", "statistician"})


@dataclass(frozen=True)
class Principal:
    role: str

    @property
    def site_id(self) -> str | None:
        return self.role.split(":", 1)[1] if self.role.startswith("site:") else None

    def may_read_site(self, site_id: str) -> bool:
        return self.role in READ_ACROSS_SITES or self.site_id == site_id

    @property
    def reads_all_sites(self) -> bool:
        return self.role in READ_ACROSS_SITES


def new_token() -> str:
    return secrets.token_urlsafe(24)


def principal_for(tokens: dict[str, str], presented: str | None) -> Principal | None:
    if not presented:
        return None
    for role, token in tokens.items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            return Principal(role)
    return None


def current_principal(request: Request) -> Principal:
    """Authorization: Bearer <token>, or the `ledger_token` cookie the pages set."""
    tokens: dict[str, str] = request.app.state.tokens  # never empty: create_app refuses that
    header = request.headers.get("authorization", "")
    presented = header[7:].strip() if header.lower().startswith("bearer ") else None
    presented = (
        presented or request.cookies.get("ledger_token") or request.query_params.get("token")
    )
    principal = principal_for(tokens, presented)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
