"""Keyed, epoch-rotated pseudonyms: HMAC-SHA256 under the epoch's purpose key.

Privacy argument: without the epoch key, a pseudonym is a PRF output and reveals nothing about
the identifier, and identifiers cannot be confirmed by hashing guesses (unlike a plain hash).
Users and devices use different keys, so a user pseudonym never equals a device pseudonym. Keys
rotate per epoch, so pseudonyms of different epochs do not link; destroying an epoch's key makes
its pseudonyms unlinkable to anyone, the operator included.

Pseudonyms are 128-bit (32 hex characters): collisions among 10^9 identifiers have probability
~10^-21.

Dedup fingerprints of event contents (:meth:`Pseudonymizer.fingerprints`, one per event, never
cached) are keyed BLAKE2s-128 (RFC 7693's keyed mode, a PRF by design like HMAC) under the
epoch's ``dedup`` key, not HMAC: they identify no person (the pseudonyms do) and they are the
one keyed hash the collector computes per event. Measured per 40-byte message in one run
(Python 3.11, 2026-11-23, a loop over 300k messages): a copied keyed BLAKE2s state
0.62 µs, keyed BLAKE2b 0.84 µs, a copied ``cryptography`` HMAC-SHA256 1.94 µs, HMAC from two
copied ``hashlib.sha256`` states 1.74 µs, a copied stdlib ``hmac.new`` 3.35 µs, the one-shot
``hmac.digest`` 4.03 µs (it re-keys every call).

Speed: a :class:`KeyedHash` keys its HMAC once and copies that state per message (half the cost
of keying a new HMAC each time); :class:`Pseudonymizer` works on whole batches, computing each
distinct identifier of a batch once and remembering recent ones in memory only (a batch whose
ids are all remembered is one dict lookup per event). The values are HMAC-SHA256 and BLAKE2s
whatever the implementation (``tests/privacy`` pins them against independent computations).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import hashes, hmac

from anonymetry.privacy.keyring import EpochKeys, Keyring

__all__ = ["Fingerprinter", "KeyedHash", "Pseudonymizer", "keyed_digest"]


class KeyedHash:
    """HMAC-SHA256 under one key, truncated to ``length`` bytes, in hex."""

    __slots__ = ("_base", "_length")

    def __init__(self, key: bytes, length: int = 16) -> None:
        self._base = hmac.HMAC(key, hashes.SHA256())
        self._length = length

    def __call__(self, message: bytes) -> str:
        mac = self._base.copy()
        mac.update(message)
        return mac.finalize()[:self._length].hex()

    def many(self, messages: Iterable[bytes]) -> list[str]:
        """``[self(m) for m in messages]``, with the method lookups hoisted out of the loop."""
        copy, length = self._base.copy, self._length
        out: list[str] = []
        append = out.append
        for message in messages:
            mac = copy()
            mac.update(message)
            append(mac.finalize()[:length].hex())
        return out


class Fingerprinter:
    """Keyed BLAKE2s under one key (32 bytes), ``length`` bytes of digest, in hex."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes, length: int = 16) -> None:
        self._base = hashlib.blake2s(key=key, digest_size=length)

    def __call__(self, message: bytes) -> str:
        state = self._base.copy()
        state.update(message)
        return state.hexdigest()

    def many(self, messages: Iterable[bytes]) -> list[str]:
        copy = self._base.copy
        out: list[str] = []
        append = out.append
        for message in messages:
            state = copy()
            state.update(message)
            append(state.hexdigest())
        return out


def keyed_digest(key: bytes, message: bytes, length: int = 16) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, truncated to ``length`` bytes, in hex."""
    return KeyedHash(key, length)(message)


class Pseudonymizer:
    """Turns raw user and device ids into epoch pseudonyms, and event content into keyed
    fingerprints (for dedup).

    Up to ``cache_size`` recent pseudonyms per purpose key are remembered, in memory only. The
    keyring is asked for the epoch's keys on every call, so a destroyed epoch is refused at once.
    """

    def __init__(self, keyring: Keyring, cache_size: int = 65536) -> None:
        self.keyring = keyring
        self._cache_size = cache_size
        # purpose key → its keyed hash (HMAC for pseudonyms, BLAKE2s for the dedup key)
        self._hashes: dict[bytes, KeyedHash | Fingerprinter] = {}
        self._memo: dict[bytes, dict[str, str]] = {}  # purpose key → raw id → pseudonym

    def keys(self, epoch: int) -> EpochKeys:
        return self.keyring.keys(epoch, create=True)

    def _hash(self, key: bytes, make: type[KeyedHash | Fingerprinter] = KeyedHash
              ) -> KeyedHash | Fingerprinter:
        keyed = self._hashes.get(key)
        if keyed is None:
            if len(self._hashes) > 64:  # old epochs' keys need not stay in memory
                self._hashes.clear()
                self._memo.clear()
            keyed = self._hashes[key] = make(key)
        return keyed

    def _many(self, key: bytes, raws: Sequence[str]) -> list[str]:
        memo = self._memo.get(key)
        if memo is None:
            memo = self._memo[key] = {}
        try:  # the common case: every id of the batch was seen recently
            return list(map(memo.__getitem__, raws))
        except KeyError:
            pass
        missing = set(raws).difference(memo)
        if missing:
            if len(memo) + len(missing) > self._cache_size:
                memo.clear()
                missing = set(raws)
            keyed = self._hash(key)
            for raw in missing:
                memo[raw] = keyed(raw.encode("utf-8"))
        return list(map(memo.__getitem__, raws))

    def users(self, raws: Sequence[str], epoch: int) -> list[str]:
        """The user pseudonym of each raw id (each distinct id is computed once)."""
        return self._many(self.keys(epoch).user, raws)

    def devices(self, raws: Sequence[str], epoch: int) -> list[str]:
        """The device pseudonym of each raw id (each distinct id is computed once)."""
        return self._many(self.keys(epoch).device, raws)

    def user(self, raw: str, epoch: int) -> str:
        return self.users((raw,), epoch)[0]

    def device(self, raw: str, epoch: int) -> str:
        return self.devices((raw,), epoch)[0]

    def fingerprints(self, messages: Iterable[bytes], epoch: int) -> list[str]:
        """Keyed BLAKE2s-128 fingerprints of event contents under the epoch's ``dedup`` key
        (never cached: each event's is new)."""
        return self._hash(self.keys(epoch).dedup, Fingerprinter).many(messages)

    def dedup_key(self, event_id: str, epoch: int) -> str:
        """A keyed fingerprint of a client event id (so ids chosen by clients don't leak)."""
        return self.fingerprints((event_id.encode("utf-8"),), epoch)[0]
