"""Governance (imports ``policy``, ``privacy`` and the store).

- :mod:`~anonymetry.governance.tokens`: ``TokenStore`` — bearer tokens with the policy's
  roles, stored as SHA-256 digests only.

The tamper-evident audit log, retention with crypto-shredding, erasure requests, lineage and the
privacy impact assessment belong here too; they are not built yet (see docs/architecture.md).
"""

from anonymetry.governance.tokens import TokenInfo, TokenStore

__all__ = ["TokenInfo", "TokenStore"]
