"""Privacy primitives (imports only ``policy``): everything that touches keys, cryptography,
noise or accounting lives here and nowhere else.

- :mod:`~anonymetry.privacy.keyring`: per-epoch secrets, HKDF purpose keys, crypto-shredding.
- :mod:`~anonymetry.privacy.pseudonym`: keyed HMAC-SHA256 pseudonyms of users and devices.
- :mod:`~anonymetry.privacy.sealing`: AES-256-GCM encryption at rest under epoch keys.
- :mod:`~anonymetry.privacy.timegrain`: time coarsening.
"""

from anonymetry.privacy.keyring import EpochKeys, Keyring, LocalKeyring, epoch_of, epoch_start
from anonymetry.privacy.pseudonym import Pseudonymizer, keyed_digest
from anonymetry.privacy.sealing import Sealer
from anonymetry.privacy.timegrain import coarsen

__all__ = [
    "EpochKeys",
    "Keyring",
    "LocalKeyring",
    "Pseudonymizer",
    "Sealer",
    "coarsen",
    "epoch_of",
    "epoch_start",
    "keyed_digest",
]
