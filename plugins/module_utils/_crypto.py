# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argon2id key derivation with NEXUS's parameters, and the guarded crypto imports.

``cryptography`` (AES-GCM, and Argon2id from 44 on) is required; ``argon2-cffi`` is only the
fallback KDF for older ``cryptography`` releases. Private to this collection.
"""

from __future__ import annotations

import traceback

# NEXUS (docs/nexus-behaviour.md §2 and §5): Argon2id(password, salt, time=1, memory=64 MiB, threads=4, len=32).
ARGON2_TIME_COST = 1
ARGON2_MEMORY_KIB = 65536
ARGON2_PARALLELISM = 4
KEY_LEN = 32

# First cryptography release with a usable Argon2id KDF.
CRYPTOGRAPHY_ARGON2_MIN_VERSION = (44, 0)

# The cipher names below are re-exported: the rest of the collection imports them from here.
try:
    import cryptography
    from cryptography.exceptions import InvalidTag  # noqa: F401  # pylint: disable=unused-import
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: F401  # pylint: disable=unused-import
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: F401  # pylint: disable=unused-import
except ImportError:
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = traceback.format_exc()
    CRYPTOGRAPHY_VERSION = None

    class InvalidTag(Exception):
        """Stand-in so ``except InvalidTag`` stays valid without cryptography."""
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
    CRYPTOGRAPHY_VERSION = cryptography.__version__

try:
    from argon2.low_level import Type as _Argon2Type
    from argon2.low_level import hash_secret_raw as _argon2_hash_secret_raw
except ImportError:
    HAS_ARGON2_CFFI = False
    ARGON2_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_ARGON2_CFFI = True
    ARGON2_IMPORT_ERROR = None


def _version_tuple(version):
    parts = []
    for piece in version.split('.')[:2]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _cryptography_argon2id():
    """The Argon2id class of ``cryptography`` when it is new enough, else None."""
    if not HAS_CRYPTOGRAPHY or _version_tuple(CRYPTOGRAPHY_VERSION) < CRYPTOGRAPHY_ARGON2_MIN_VERSION:
        return None
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    except ImportError:  # built without Argon2 support (e.g. some distribution builds)
        return None
    return Argon2id


def missing_dependency():
    """``(library_name, traceback)`` for ``missing_required_lib``, or None when all is there."""
    if not HAS_CRYPTOGRAPHY:
        return 'cryptography', CRYPTOGRAPHY_IMPORT_ERROR
    if _cryptography_argon2id() is None and not HAS_ARGON2_CFFI:
        return ('cryptography >= 44 or argon2-cffi (cryptography %s has no Argon2id)' % CRYPTOGRAPHY_VERSION,
                ARGON2_IMPORT_ERROR)
    return None


def _to_bytes(password):
    if isinstance(password, bytes):
        return password
    return password.encode('utf-8')


def derive_key_cryptography(password, salt):
    """Argon2id through ``cryptography`` (>= 44)."""
    argon2id = _cryptography_argon2id()
    if argon2id is None:
        raise RuntimeError('cryptography %s has no Argon2id' % CRYPTOGRAPHY_VERSION)
    kdf = argon2id(salt=bytes(salt), length=KEY_LEN, iterations=ARGON2_TIME_COST,
                   lanes=ARGON2_PARALLELISM, memory_cost=ARGON2_MEMORY_KIB)
    return kdf.derive(_to_bytes(password))


def derive_key_argon2_cffi(password, salt):
    """Argon2id through ``argon2-cffi`` (the fallback)."""
    if not HAS_ARGON2_CFFI:
        raise RuntimeError('argon2-cffi is not installed')
    return _argon2_hash_secret_raw(secret=_to_bytes(password), salt=bytes(salt), time_cost=ARGON2_TIME_COST,
                                   memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM,
                                   hash_len=KEY_LEN, type=_Argon2Type.ID)


def derive_key(password, salt):
    """The 32-byte AES key NEXUS derives from ``password`` (str or bytes) and ``salt``."""
    if _cryptography_argon2id() is not None:
        return derive_key_cryptography(password, salt)
    return derive_key_argon2_cffi(password, salt)


def require_crypto(module, needed=True):
    """``module.fail_json`` with ``missing_required_lib`` when ``needed`` and the crypto libraries are
    missing (the one check every module that encrypts or decrypts makes before any work)."""
    if not needed:
        return
    missing = missing_dependency()
    if missing:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib(missing[0]), exception=missing[1])
