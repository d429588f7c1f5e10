# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup-password rotation of a host's backups in S3-compatible storage (``<prefix>/<host>/``).

Which password an object opens with is read from its first bytes (a ranged GET), as for a file.
An object under the old password is replaced, in one atomic PUT (or CompleteMultipartUpload), by:

- the host's local copy of the same backup, once that copy was rotated and authenticates under the
  new password (``_s3.upload_backup`` with ``overwrite``: a corrupt file never replaces an object);
- or, when there is no usable local copy (remote retention keeps backups longer than the host),
  the object itself re-encrypted: streamed from the store through the old password's decryption
  and the new one's encryption into a private 0600 temp file beside the local backups (the name
  ``_rekey_backups.remove_leftovers`` removes after a killed run), read back with the new password
  and compared, uploaded the same way, then removed. No plaintext touches disk.

The sidecar object follows its data object. A run stopped between the two leaves a sidecar that
names the old SHA-256: the next run sees the object open with the new password and its sidecar
disagree with the SHA-256 in the object's metadata (stored with the object in the same PUT), reads
the object through the new password's decryption (so corruption is never blessed) and rewrites the
sidecar. Names never change, so retention (local or remote) sees the same backups before and after.

Private to this collection; no AnsibleModule logic here.
"""

from __future__ import annotations

import os

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _rekey_backups, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import CHUNK_SIZE, EnvelopeError, EnvelopeReader
from ansible_collections.nexus.secrets.plugins.module_utils._rekey_backups import NEITHER, NEW, OLD, RekeyError

__all__ = ['NEITHER', 'NEW', 'OLD', 'RekeyError', 'object_password', 'sidecar_is_stale', 'fix_sidecar',
           'rekey_object', 'replace_from_local']


def _shown(bucket, key):
    return 's3://%s/%s' % (bucket, key)


def object_password(client, bucket, key, old_password, new_password):
    """OLD, NEW or NEITHER for the object ``key``, from its first bytes."""
    head = _s3.get_first_bytes(client, bucket, key, _rekey_backups.HEAD_BYTES)
    if head is None:
        raise RekeyError('%s disappeared while the backups were rotated' % _shown(bucket, key))
    return _rekey_backups.password_of_head(head, old_password, new_password)


def _open_body(client, bucket, key):
    try:
        return client.get_object(Bucket=bucket, Key=key)['Body']
    except Exception as exc:  # pylint: disable=broad-except  # botocore's errors, reported
        raise RekeyError('cannot read %s: %s' % (_shown(bucket, key), _s3.describe_error(exc)))


def sidecar_is_stale(client, bucket, key):
    """Whether the sidecar object of ``key`` is missing or names another SHA-256 than the object holds.

    The object's SHA-256 comes from its metadata; a store that keeps no metadata is read in full."""
    info = _s3.head(client, bucket, key)
    if info is None:
        raise RekeyError('%s disappeared while the backups were rotated' % _shown(bucket, key))
    raw = _s3.get_small(client, bucket, key + _layout.SIDECAR_SUFFIX)
    if raw is None:
        return True
    try:
        recorded = _s3.sidecar_digest(raw, key)
    except _s3.S3Error:
        return True
    actual = _s3.metadata_sha256(info) or _s3.object_sha256(client, bucket, key)[0]
    return recorded != actual


def fix_sidecar(client, bucket, key, new_password):
    """Rewrite the sidecar object of ``key`` from the object's content, once that authenticated
    under ``new_password`` (a corrupt object keeps its sidecar, which then tells it is corrupt)."""
    body = _open_body(client, bucket, key)
    reader = _s3.HashingReader(body.read)
    try:
        envelope = EnvelopeReader(reader, new_password)
        while envelope.read(CHUNK_SIZE):
            pass
    except EnvelopeError as exc:
        raise RekeyError('%s opens with the new password but does not authenticate (%s); its sidecar is left as '
                         'it was' % (_shown(bucket, key), exc))
    except Exception as exc:  # pylint: disable=broad-except  # botocore's errors, reported
        raise RekeyError('cannot read %s: %s' % (_shown(bucket, key), _s3.describe_error(exc)))
    finally:
        body.close()
    digest = reader.sha256.hexdigest()
    stored = _s3.metadata_sha256(_s3.head(client, bucket, key))
    if stored and stored != digest:
        # A sidecar written now would disagree with the metadata, and the next run would find it stale again.
        raise RekeyError('%s reads as SHA-256 %s but its metadata says %s; its sidecar is left as it was'
                         % (_shown(bucket, key), digest, stored))
    name = key.rsplit('/', 1)[-1]
    try:
        _s3.put_sidecar(client, bucket, key + _layout.SIDECAR_SUFFIX, _layout.sidecar_line(digest, name).encode('utf-8'))
    except Exception as exc:  # pylint: disable=broad-except  # botocore's errors, reported
        raise RekeyError('cannot write %s%s: %s'
                         % (_shown(bucket, key), _layout.SIDECAR_SUFFIX, _s3.describe_error(exc)))
    return digest


def replace_from_local(client, bucket, prefix, host, path, new_password):
    """Replace the object of backup ``path`` by ``path`` (rotated), which must open with ``new_password``."""
    try:
        return _s3.upload_backup(client, bucket, prefix, host, path, overwrite=True, backup_password=new_password)
    except _s3.S3Error as exc:
        raise RekeyError(str(exc))


def rekey_object(client, bucket, prefix, host, name, directory, old_password, new_password):
    """Re-encrypt the object of backup ``name`` from its own content and replace it (see the module doc)."""
    key = _s3.host_prefix(prefix, host) + name
    fd, tmp = _rekey_backups.temp_beside(directory, name)
    raw = os.fdopen(fd, 'wb')
    try:
        body = _open_body(client, bucket, key)
        try:
            with raw:
                plain_sha256, dummy = _rekey_backups.reencrypt(body, raw, old_password, new_password)
        except EnvelopeError as exc:
            raise RekeyError('%s: %s; left as it was' % (_shown(bucket, key), exc))
        except (IOError, OSError) as exc:
            raise RekeyError('%s: cannot write its re-encrypted copy %s: %s; left as it was'
                             % (_shown(bucket, key), tmp, exc.strerror or exc))
        except Exception as exc:  # pylint: disable=broad-except  # botocore's errors while streaming
            raise RekeyError('cannot read %s: %s; left as it was' % (_shown(bucket, key), _s3.describe_error(exc)))
        finally:
            body.close()
        try:
            _rekey_backups.check_reencrypted(tmp, new_password, plain_sha256, _shown(bucket, key))
        except EnvelopeError as exc:
            raise RekeyError('%s: %s; left as it was' % (_shown(bucket, key), exc))
        try:
            return _s3.upload_backup(client, bucket, prefix, host, tmp, name=name, overwrite=True,
                                     backup_password=new_password)
        except _s3.S3Error as exc:
            raise RekeyError(str(exc))
    finally:
        raw.close()
        if os.path.lexists(tmp):
            os.unlink(tmp)
