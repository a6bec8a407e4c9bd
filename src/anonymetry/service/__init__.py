"""The collector service (a surface: HTTP only, no privacy logic of its own).

- :mod:`~anonymetry.service.app`: ``CollectorApp``, the bare ASGI app, and ``ServiceConfig``.
- :mod:`~anonymetry.service.errors`: HTTP errors; ``anonymetry.errors`` → HTTP statuses.
- :mod:`~anonymetry.service.openapi`: the OpenAPI document served at ``/openapi.json``.
- :mod:`~anonymetry.service.server`: uvicorn in one or several worker processes.

Names are imported lazily so that ``import anonymetry.service`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CollectorApp", "ServiceConfig", "openapi_document"]


def __getattr__(name: str) -> Any:
    if name in ("CollectorApp", "ServiceConfig"):
        from anonymetry.service import app

        return getattr(app, name)
    if name == "openapi_document":
        from anonymetry.service.openapi import openapi_document

        return openapi_document
    raise AttributeError(name)
