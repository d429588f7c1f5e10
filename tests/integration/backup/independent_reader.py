"""A reader of nexusctl backup files written from docs/nexus-behaviour.md §5 alone, sharing no code with the collection.

Envelope: salt(16) || nonce(12) || AES-256-GCM(ciphertext || tag16), no AAD, key =
Argon2id(password, salt, t=1, m=65536 KiB, p=4, len=32). Plaintext: gzip of a POSIX ustar tar.
Tar headers are parsed by hand, so the exact bytes (no trailing slash, type flags, octal modes)
are what is checked, not what Python's tarfile makes of them.
"""

import gzip

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def decrypt(blob, password):
    salt, nonce, sealed = blob[:16], blob[16:28], blob[28:]
    key = hash_secret_raw(password.encode(), salt, time_cost=1, memory_cost=65536, parallelism=4, hash_len=32,
                          type=Type.ID)
    return AESGCM(key).decrypt(nonce, sealed, None)


def _field(header, start, length):
    return header[start:start + length].split(b'\0', 1)[0].decode()


def _number(header, start, length):
    raw = header[start:start + length]
    if raw[0] & 0x80:
        return int.from_bytes(raw[1:], 'big')
    return int(raw.split(b'\0', 1)[0].strip() or b'0', 8)


def list_tar(tar_bytes):
    """``[{'name', 'type', 'mode', 'size', 'data', 'magic'}]`` for each member, in order."""
    members = []
    offset = 0
    while offset + 512 <= len(tar_bytes):
        header = tar_bytes[offset:offset + 512]
        if header == b'\0' * 512:
            break
        stored = _number(header, 148, 8)
        assert stored == sum(header[:148]) + 8 * 32 + sum(header[156:]), 'bad header checksum'
        prefix = _field(header, 345, 155)
        name = _field(header, 0, 100)
        size = _number(header, 124, 12)
        typeflag = header[156:157]
        data = tar_bytes[offset + 512:offset + 512 + size]
        members.append({'name': prefix + '/' + name if prefix else name,
                        'type': {b'0': 'file', b'\0': 'file', b'5': 'dir'}.get(typeflag, typeflag),
                        'mode': _number(header, 100, 8), 'size': size, 'data': data,
                        'magic': header[257:265]})
        offset += 512 + (size + 511) // 512 * 512
    return members


def read_backup(path, password):
    with open(path, 'rb') as fh:
        return list_tar(gzip.decompress(decrypt(fh.read(), password)))
