"""Keyed, epoch-rotated pseudonyms: HMAC-SHA256 under the epoch's purpose key.

Privacy argument: without the epoch key, a pseudonym is a PRF output and reveals nothing about
the identifier, and identifiers cannot be confirmed by hashing guesses (unlike a plain hash).
Users and devices use different keys, so a user pseudonym never equals a device pseudonym. Keys
rotate per epoch, so pseudonyms of different epochs do not link; destroying an epoch's key makes
its pseudonyms unlinkable to anyone, the operator included.

Pseudonyms are 128-bit (32 hex characters): collisions among 10^9 identifiers have probability
~10^-21.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.hazmat.primitives import hashes, hmac

from anonymetry.privacy.keyring import EpochKeys, Keyring

__all__ = ["Pseudonymizer", "keyed_digest"]


def keyed_digest(key: bytes, message: bytes, length: int = 16) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, truncated to ``length`` bytes, in hex."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(message)
    return mac.finalize()[:length].hex()


class Pseudonymizer:
    """Turns raw user and device ids into epoch pseudonyms.

    A small cache of recent ids keeps the hot path fast; it lives in memory only.
    """

    def __init__(self, keyring: Keyring, cache_size: int = 65536) -> None:
        self.keyring = keyring

        @lru_cache(maxsize=cache_size)
        def _digest(key: bytes, raw: str) -> str:
            return keyed_digest(key, raw.encode("utf-8"))

        self._digest = _digest

    def keys(self, epoch: int) -> EpochKeys:
        return self.keyring.keys(epoch, create=True)

    def user(self, raw: str, epoch: int) -> str:
        return self._digest(self.keys(epoch).user, raw)

    def device(self, raw: str, epoch: int) -> str:
        return self._digest(self.keys(epoch).device, raw)

    def dedup_key(self, event_id: str, epoch: int) -> str:
        """A keyed fingerprint of a client event id (so ids chosen by clients don't leak)."""
        return self._digest(self.keys(epoch).dedup, event_id)
