"""Bearer tokens with roles, stored hashed in ``DIR/tokens.sqlite``.

A token is ``anm_`` + 43 characters of :func:`secrets.token_urlsafe` (256 bits). Only its
SHA-256 is stored: with 256 random bits there is nothing to brute-force, so a plain hash is
enough (a slow password hash would only slow every request). The plaintext is shown once, when
created.

A token grants a *role* from the policy's ``roles`` (e.g. ``collector: [ingest]``) or, when
created with a permission name that is not a role (``--role ingest``), that one permission.
Permissions are resolved against the policy in force at check time, so editing a role in the
policy changes what its tokens may do. Revoked tokens stay listed (revoked) but never verify.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from anonymetry.errors import InvalidParameter
from anonymetry.policy import Policy

__all__ = ["KNOWN_PERMISSIONS", "TOKEN_PREFIX", "TokenInfo", "TokenStore"]

TOKEN_PREFIX = "anm_"  # noqa: S105 - a public prefix that marks tokens, not a secret
KNOWN_PERMISSIONS = frozenset(
    {"ingest", "query", "grant_budget", "assess", "release", "admin", "read_dashboard", "erase"}
)
_CACHE_SECONDS = 5.0  # a revocation takes effect in other processes within this time


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known about a token (never the token itself)."""

    id: str
    role: str
    kind: str  # "role" or "permission"
    created: str
    revoked: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "role": self.role, "kind": self.kind, "created": self.created,
                "revoked": self.revoked}


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class TokenStore:
    """Create, list, revoke and verify tokens of one data directory."""

    def __init__(self, data_dir: str | Path, policy: Policy) -> None:
        self.policy = policy
        self.path = Path(data_dir) / "tokens.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
            " role TEXT NOT NULL, kind TEXT NOT NULL, created TEXT NOT NULL, revoked TEXT)"
        )
        self.path.chmod(0o600)
        self._cache: dict[str, tuple[float, frozenset[str] | None]] = {}

    def permissions_of(self, role: str, kind: str) -> frozenset[str]:
        if kind == "permission":
            return frozenset({role})
        return frozenset(self.policy.roles.get(role, ()))

    def create(self, role: str) -> tuple[str, TokenInfo]:
        """A new token for ``role`` (a policy role, or a single permission). Returns the
        plaintext token (show it once) and its info."""
        if role in self.policy.roles:
            kind = "role"
        elif role in KNOWN_PERMISSIONS:
            kind = "permission"
        else:
            roles = ", ".join(sorted(self.policy.roles)) or "(none)"
            raise InvalidParameter(
                f"role {role!r} is neither a role of the policy ({roles}) nor a permission "
                f"({', '.join(sorted(KNOWN_PERMISSIONS))}); pick one of those"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(
            id=secrets.token_hex(6), role=role, kind=kind,
            created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), revoked=None,
        )
        with self._lock:
            self._conn.execute(
                "INSERT INTO tokens(hash, id, role, kind, created) VALUES (?, ?, ?, ?, ?)",
                (_digest(token), info.id, info.role, info.kind, info.created),
            )
        return token, info

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, role, kind, created, revoked FROM tokens ORDER BY rowid"
            ).fetchall()
        return [TokenInfo(*row) for row in rows]

    def revoke(self, token_id: str) -> TokenInfo:
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        with self._lock:
            cur = self._conn.execute(
                "UPDATE tokens SET revoked = coalesce(revoked, ?) WHERE id = ?", (now, token_id)
            )
            if cur.rowcount == 0:
                raise InvalidParameter(
                    f"no token with id {token_id!r}; see 'anonymetry tokens list'")
            row = self._conn.execute(
                "SELECT id, role, kind, created, revoked FROM tokens WHERE id = ?", (token_id,)
            ).fetchone()
            self._cache.clear()
        return TokenInfo(*row)

    def verify(self, token: str) -> frozenset[str] | None:
        """The permissions of a valid, unrevoked token; ``None`` if it is unknown or revoked.

        Results are cached for a few seconds per process (hot path of every request).
        """
        key = _digest(token)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self._lock:
            row = self._conn.execute(
                "SELECT role, kind FROM tokens WHERE hash = ? AND revoked IS NULL", (key,)
            ).fetchone()
        perms = self.permissions_of(row[0], row[1]) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + _CACHE_SECONDS, perms)
        return perms

    def roles(self) -> Mapping[str, tuple[str, ...]]:
        return self.policy.roles

    def close(self) -> None:
        with self._lock:
            self._conn.close()
