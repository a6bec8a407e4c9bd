"""Encryption at rest: AES-256-GCM under the epoch's ``seal`` key.

Destroying an epoch in the keyring makes everything sealed under it unreadable
(crypto-shredding). Each blob is ``nonce (12 bytes) || ciphertext || tag``; nonces are random
(96 bits; far fewer than 2^32 blobs are sealed per key per epoch). The associated data binds a
blob to where it belongs (e.g. a WAL segment and sequence), so blobs cannot be swapped unnoticed.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from anonymetry.errors import TamperDetected
from anonymetry.privacy.keyring import Keyring

__all__ = ["Sealer"]


class Sealer:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._aead: dict[int, AESGCM] = {}

    def _cipher(self, epoch: int, create: bool) -> AESGCM:
        aead = self._aead.get(epoch)
        if aead is None:
            aead = AESGCM(self.keyring.keys(epoch, create=create).seal)
            self._aead[epoch] = aead
        return aead

    def seal(self, epoch: int, plaintext: bytes, aad: bytes = b"") -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._cipher(epoch, True).encrypt(nonce, plaintext, aad)

    def open(self, epoch: int, blob: bytes, aad: bytes = b"") -> bytes:
        """Decrypt; raises :class:`KeyUnavailable` for a shredded epoch, :class:`TamperDetected`
        if the blob or its associated data was altered."""
        try:
            return self._cipher(epoch, False).decrypt(blob[:12], blob[12:], aad)
        except (InvalidTag, ValueError):
            raise TamperDetected(f"sealed data of epoch {epoch} does not authenticate") from None

    def forget(self, epoch: int) -> None:
        """Drop the cached cipher of ``epoch`` (after it was destroyed)."""
        self._aead.pop(epoch, None)
