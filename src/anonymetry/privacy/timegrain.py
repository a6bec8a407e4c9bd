"""Time coarsening: stored times are floored to the policy's granularity (UTC).

Coarse times blunt timing attacks on traces (see the Assess layer's trace-uniqueness measure,
which is how the granularity should be chosen).
"""

from __future__ import annotations

from anonymetry.policy import TimeGranularity

__all__ = ["coarsen"]


def coarsen(unix_seconds: float, granularity: TimeGranularity) -> int:
    """Floor ``unix_seconds`` to the start of its ``granularity`` bin (UTC), in seconds."""
    step = granularity.seconds
    return int(unix_seconds // step) * step
