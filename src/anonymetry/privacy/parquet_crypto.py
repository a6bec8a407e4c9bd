"""Parquet modular encryption under per-epoch keys (the compacted event store).

Each Parquet file of the store holds rows of one key epoch and is written with Parquet modular
encryption (AES-GCM-V1, 256-bit data keys, encrypted footer, every column encrypted). Its data
keys are wrapped (double wrapping, key material inside the footer) by a *master key* of the
epoch, ``HKDF-SHA256(epoch seal key, "anonymetry/v1/parquet-master/epoch/<e>")``. Destroying the
epoch in the keyring therefore makes the epoch's Parquet files unreadable (crypto-shredding),
exactly like its sealed WAL blobs.

The KMS client wraps with ``cryptography``'s AES-GCM in the format of parquet-mr's
``InMemoryKMS`` (``base64(nonce ‖ ciphertext ‖ tag)``, associated data = the master key id), so a
JVM reader (Spark) can be given the same master keys through
:meth:`ParquetCrypto.spark_hadoop_conf` instead of a Python callback.

pyarrow calls :meth:`_EpochKms.unwrap_key` from its own threads, holding the GIL only for the
call; :meth:`ParquetCrypto.warm` unwraps an epoch's key encryption key once in Python so that
engines which hold the GIL while scanning (DuckDB over a pyarrow dataset) never need the callback.
"""

from __future__ import annotations

import base64
import secrets
import threading
from collections.abc import Iterable
from datetime import timedelta

import pyarrow.dataset as ds
import pyarrow.parquet.encryption as pe
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from anonymetry.errors import InvalidParameter, KeyUnavailable, TamperDetected
from anonymetry.privacy.keyring import Keyring

__all__ = ["ParquetCrypto", "master_key_id"]

_PREFIX = "anonymetry-epoch-"


def master_key_id(epoch: int) -> str:
    """The Parquet master key identifier of ``epoch`` (stored in each file's key material)."""
    return f"{_PREFIX}{epoch}"


def _epoch_of_id(master_key_identifier: str) -> int:
    if not master_key_identifier.startswith(_PREFIX):
        raise InvalidParameter(f"Parquet master key id {master_key_identifier!r} is not ours")
    return int(master_key_identifier[len(_PREFIX):])


class _MasterKeys:
    """Per-epoch Parquet master keys derived from the keyring, cached in memory only."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring
        self._cache: dict[int, bytes] = {}
        self._mutex = threading.Lock()

    def get(self, epoch: int, *, create: bool) -> bytes:
        with self._mutex:
            key = self._cache.get(epoch)
            if key is None:
                seal = self.keyring.keys(epoch, create=create).seal
                info = f"anonymetry/v1/parquet-master/epoch/{epoch}".encode()
                key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(seal)
                self._cache[epoch] = key
            return key

    def forget(self) -> None:
        with self._mutex:
            self._cache.clear()


class _EpochKms(pe.KmsClient):
    """A pyarrow KMS client whose master keys are the epochs' Parquet master keys."""

    def __init__(self, masters: _MasterKeys, create: bool) -> None:
        pe.KmsClient.__init__(self)
        self._masters = masters
        self._create = create

    def wrap_key(self, key_bytes: bytes, master_key_identifier: str) -> str:
        master = self._masters.get(_epoch_of_id(master_key_identifier), create=self._create)
        nonce = secrets.token_bytes(12)
        aad = master_key_identifier.encode("utf-8")
        return base64.b64encode(nonce + AESGCM(master).encrypt(nonce, key_bytes, aad)).decode()

    def unwrap_key(self, wrapped_key: str, master_key_identifier: str) -> bytes:
        epoch = _epoch_of_id(master_key_identifier)
        master = self._masters.get(epoch, create=False)
        blob = base64.b64decode(wrapped_key)
        try:
            return AESGCM(master).decrypt(blob[:12], blob[12:],
                                          master_key_identifier.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise TamperDetected(
                f"a Parquet data key of epoch {epoch} does not authenticate; the file was altered"
            ) from None


class ParquetCrypto:
    """Encryption and decryption properties for the store's Parquet files.

    One instance per process is enough; :meth:`forget` drops every cached key (call it after an
    epoch was destroyed so no cached key outlives the keyring entry).
    """

    def __init__(self, keyring: Keyring, *, cache_seconds: float = 600.0) -> None:
        self._masters = _MasterKeys(keyring)
        self._cache = timedelta(seconds=cache_seconds)
        self._factory = pe.CryptoFactory(lambda _cfg: _EpochKms(self._masters, True))
        self._kms_config = pe.KmsConnectionConfig()

    def encryption_properties(self, epoch: int):  # -> pyarrow FileEncryptionProperties
        """For ``pq.ParquetWriter(..., encryption_properties=...)`` of a file of ``epoch``."""
        config = pe.EncryptionConfiguration(
            footer_key=master_key_id(epoch),
            uniform_encryption=True,  # every column under the footer key
            encryption_algorithm="AES_GCM_V1",
            plaintext_footer=False,  # column names and statistics are encrypted too
            double_wrapping=True,
            internal_key_material=True,
            data_key_length_bits=256,
            cache_lifetime=self._cache,
        )
        return self._factory.file_encryption_properties(self._kms_config, config)

    def decryption_properties(self):  # -> pyarrow FileDecryptionProperties
        """For ``pq.ParquetFile(..., decryption_properties=...)``."""
        config = pe.DecryptionConfiguration(cache_lifetime=self._cache)
        return self._factory.file_decryption_properties(self._kms_config, config)

    def file_format(self) -> ds.ParquetFileFormat:
        """A pyarrow dataset format that decrypts the store's files while scanning."""
        decryption = ds.ParquetDecryptionConfig(
            self._factory, self._kms_config,
            pe.DecryptionConfiguration(cache_lifetime=self._cache),
        )
        options = ds.ParquetFragmentScanOptions(decryption_config=decryption)
        return ds.ParquetFileFormat(default_fragment_scan_options=options)

    def warm(self, path: str) -> None:
        """Unwrap ``path``'s key encryption key now, in Python, so that later scans of the file
        (for the cache lifetime) need no KMS callback."""
        import pyarrow.parquet as pq

        pq.read_metadata(path, decryption_properties=self.decryption_properties())

    def check_epoch(self, epoch: int) -> None:
        """Raise :class:`KeyUnavailable` if ``epoch`` cannot be read (destroyed or unknown)."""
        self._masters.get(epoch, create=False)

    def forget(self) -> None:
        self._masters.forget()
        self._factory.remove_cache_entries_for_all_tokens()

    def spark_hadoop_conf(self, epochs: Iterable[int]) -> dict[str, str]:
        """Hadoop settings that let Spark (parquet-mr ``PropertiesDrivenCryptoFactory`` with
        ``InMemoryKMS``) read the given epochs' files. They contain key material: pass them to a
        local Spark session only, never log them. Destroyed epochs are left out."""
        keys = []
        for epoch in epochs:
            try:
                master = self._masters.get(epoch, create=False)
            except KeyUnavailable:
                continue
            keys.append(f"{master_key_id(epoch)}:{base64.b64encode(master).decode()}")
        return {
            "parquet.crypto.factory.class":
                "org.apache.parquet.crypto.keytools.PropertiesDrivenCryptoFactory",
            "parquet.encryption.kms.client.class":
                "org.apache.parquet.crypto.keytools.mocks.InMemoryKMS",
            "parquet.encryption.key.list": ",".join(keys),
        }
