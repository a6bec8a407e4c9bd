"""Keyring: one random root secret per key epoch, from which purpose keys are derived by HKDF.

Why per-epoch random secrets and not one master key: destroying an epoch's secret must make
that epoch's pseudonyms unlinkable and its sealed data unreadable for good (crypto-shredding).
A key derived from a surviving master could be derived again; a destroyed random secret cannot.

The local keyring is a JSON document sealed with AES-256-GCM under a key-encryption key (KEK)
taken from ``$ANONYMETRY_KEK`` (base64 of 32 bytes) or, by default, a ``kek`` file created
beside it with mode 0600. Production deployments put the KEK in a KMS/HSM: only
:class:`Keyring` is used by the rest of the system.

Epochs are whole multiples of ``key_epoch_days`` since the Unix epoch, in UTC:
``epoch = floor(unix_seconds / (86400 * key_epoch_days))``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anonymetry._fs import fsync_dir
from anonymetry.errors import InvalidParameter, KeyUnavailable, TamperDetected

__all__ = ["KEK_ENV", "EpochKeys", "Keyring", "LocalKeyring", "epoch_of", "epoch_start"]

KEK_ENV = "ANONYMETRY_KEK"
_SECRET_BYTES = 32
_AAD = b"anonymetry/keyring/v1"
PURPOSES = ("pseudonym/user", "pseudonym/device", "seal", "dedup")


def epoch_of(unix_seconds: float, key_epoch_days: int) -> int:
    """The key epoch that contains ``unix_seconds``."""
    if key_epoch_days < 1:
        raise InvalidParameter(f"key_epoch_days must be ≥ 1, got {key_epoch_days}")
    return int(unix_seconds // (86400 * key_epoch_days))


def epoch_start(epoch: int, key_epoch_days: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch * 86400 * key_epoch_days, tz=dt.UTC)


@dataclass(frozen=True, slots=True)
class EpochKeys:
    """Purpose keys of one epoch, each 32 bytes derived by HKDF-SHA256 from the epoch secret."""

    epoch: int
    user: bytes
    device: bytes
    seal: bytes
    dedup: bytes

    @classmethod
    def derive(cls, epoch: int, secret: bytes) -> EpochKeys:
        def hkdf(purpose: str) -> bytes:
            info = f"anonymetry/v1/epoch/{epoch}/{purpose}".encode()
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

        return cls(epoch, hkdf("pseudonym/user"), hkdf("pseudonym/device"), hkdf("seal"),
                   hkdf("dedup"))

    def __repr__(self) -> str:  # never print key material
        return f"EpochKeys(epoch={self.epoch})"


class Keyring(Protocol):
    """What the rest of anonymetry needs from a keyring (local file, KMS, HSM)."""

    def keys(self, epoch: int, *, create: bool = False) -> EpochKeys:
        """Keys of ``epoch``; with ``create``, make the epoch's secret if it has none yet.

        Raises :class:`KeyUnavailable` if the epoch was destroyed, or is missing and not created.
        """
        ...

    def destroy(self, epoch: int) -> None:
        """Crypto-shred ``epoch``: its secret is erased and can never be used again."""
        ...

    def epochs(self) -> dict[int, str]:
        """Every epoch known, with its state: ``active`` or ``destroyed``."""
        ...

    def standing_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` that never rotates (e.g. the consent ledger's device key)."""
        ...


class LocalKeyring:
    """A keyring in one sealed file, safe for several processes on one machine (flock)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = self.directory / "keyring.sealed"
        self._lock_path = self.directory / "keyring.lock"
        self._kek = self._load_kek()
        self._cache: dict[int, EpochKeys] = {}
        self._mutex = threading.Lock()

    # -- KEK -----------------------------------------------------------------------------
    def _load_kek(self) -> bytes:
        env = os.environ.get(KEK_ENV)
        if env:
            try:
                kek = base64.b64decode(env, validate=True)
            except ValueError:
                kek = b""
            if len(kek) != _SECRET_BYTES:
                raise InvalidParameter(f"${KEK_ENV} must be base64 of 32 bytes")
            return kek
        kek_path = self.directory / "kek"
        with self._locked():
            if not kek_path.exists():
                fd = os.open(kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(secrets.token_bytes(_SECRET_BYTES))
                    fh.flush()
                    os.fsync(fh.fileno())
                fsync_dir(self.directory)
            kek = kek_path.read_bytes()
        if len(kek) != _SECRET_BYTES:
            raise TamperDetected(f"{kek_path}: key-encryption key has the wrong length")
        return kek

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- the sealed document -------------------------------------------------------------
    def _read(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        blob = self.path.read_bytes()
        try:
            plain = AESGCM(self._kek).decrypt(blob[:12], blob[12:], _AAD)
        except (InvalidTag, ValueError):
            raise TamperDetected(
                f"{self.path}: keyring does not decrypt; wrong ${KEK_ENV} or the file was altered"
            ) from None
        return json.loads(plain)["epochs"]

    def _write(self, epochs: dict[str, dict[str, str]]) -> None:
        nonce = secrets.token_bytes(12)
        plain = json.dumps({"version": 1, "epochs": epochs}, sort_keys=True).encode()
        blob = nonce + AESGCM(self._kek).encrypt(nonce, plain, _AAD)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        fsync_dir(self.directory)

    # -- Keyring protocol ----------------------------------------------------------------
    def keys(self, epoch: int, *, create: bool = False) -> EpochKeys:
        cached = self._cache.get(epoch)
        if cached is not None:
            return cached
        with self._mutex:
            cached = self._cache.get(epoch)
            if cached is not None:
                return cached
            entry = self._read().get(str(epoch))
            if entry is None and create:
                with self._locked():
                    epochs = self._read()
                    entry = epochs.get(str(epoch))
                    if entry is None:
                        entry = {
                            "state": "active",
                            "secret": base64.b64encode(secrets.token_bytes(32)).decode(),
                            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        }
                        epochs[str(epoch)] = entry
                        self._write(epochs)
            if entry is None:
                raise KeyUnavailable(f"key epoch {epoch} has no key; nothing was sealed under it")
            if entry["state"] == "destroyed":
                raise KeyUnavailable(
                    f"key epoch {epoch} was destroyed on {entry.get('destroyed', '?')}; "
                    "its data is crypto-shredded and cannot be read or written"
                )
            keys = EpochKeys.derive(epoch, base64.b64decode(entry["secret"]))
            self._cache[epoch] = keys
            return keys

    def destroy(self, epoch: int) -> None:
        with self._mutex, self._locked():
            epochs = self._read()
            if str(epoch) not in epochs:
                raise KeyUnavailable(f"key epoch {epoch} is unknown; nothing to destroy")
            epochs[str(epoch)] = {
                "state": "destroyed",
                "destroyed": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            self._write(epochs)
            self._cache.pop(epoch, None)

    def epochs(self) -> dict[int, str]:
        entries = sorted(self._read().items(), key=lambda kv: int(kv[0]))
        return {int(k): v["state"] for k, v in entries}

    def standing_key(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` that does NOT rotate with epochs.

        For records that must outlive epochs, such as the consent ledger (an opt-out is kept
        for good). Derived by HKDF-SHA256 from one random standing secret kept sealed in
        ``standing.sealed`` beside the keyring, so a keyed hash under it links a device across
        epochs: use it only for data that holds no events. Destroying epochs does not touch it.
        """
        path = self.directory / "standing.sealed"
        aad = b"anonymetry/keyring/standing/v1"
        with self._mutex, self._locked():
            if not path.exists():
                nonce, secret = secrets.token_bytes(12), secrets.token_bytes(_SECRET_BYTES)
                tmp = path.with_suffix(".tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as fh:
                    fh.write(nonce + AESGCM(self._kek).encrypt(nonce, secret, aad))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
                fsync_dir(self.directory)
            blob = path.read_bytes()
        try:
            secret = AESGCM(self._kek).decrypt(blob[:12], blob[12:], aad)
        except (InvalidTag, ValueError):
            raise TamperDetected(f"{path}: standing secret does not decrypt") from None
        info = f"anonymetry/v1/standing/{purpose}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)

    def refresh(self) -> None:
        """Forget cached keys (another process may have destroyed an epoch)."""
        with self._mutex:
            self._cache.clear()
