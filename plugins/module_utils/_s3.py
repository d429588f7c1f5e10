# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups in S3-compatible object storage, over boto3: upload, verify, list, retention, download.

Layout in the bucket: ``<prefix>/<host>/<backup name>`` and its sidecar ``<...>.sha256`` (the
``sha256sum`` line the backup module writes). The object's SHA-256 also goes into its user
metadata (``x-amz-meta-sha256``) where the store keeps metadata.

What "verified" means here: after an upload, the stored object's size (HEAD) equals the file's, and
the object read back from the store, streamed through SHA-256, equals the file's SHA-256; the
sidecar object read back equals the local sidecar line. A download is checked the same way against
the sidecar object (and the metadata, when the store returns it) before it is renamed into place.

Large files go up as a multipart upload, a few parts in flight at a time (memory: about
``part_size * concurrency``); each part carries Content-MD5, which the store checks. Any failure
aborts the multipart upload, so the store never shows a partial object under the key. An object
that already exists under the key is not replaced: the same content is a no-op, different content
is an error, unless the caller asks to overwrite it (``overwrite=True``). Then the file must first
prove to be a backup under the given password (its whole envelope authenticates), so a corrupt
file never replaces a good object. The object is replaced by one PUT or CompleteMultipartUpload,
which the store applies atomically: readers see the old object or the new one, never a mixture.
The sidecar object follows the data object; a run stopped between the two leaves a sidecar that
names the old SHA-256, which the next overwriting run finds and rewrites.

Private to this collection; not a public API. No AnsibleModule logic here.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import hashlib
import os
import stat
import traceback

from ansible_collections.nexus.secrets.plugins.module_utils import _fsutil, _layout, _retention
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import CHUNK_SIZE, EnvelopeError, EnvelopeReader
from ansible_collections.nexus.secrets.plugins.module_utils._env import nonempty_env_fallback

try:
    import boto3
    import botocore.config
    import botocore.exceptions
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None

MIB = 1024 * 1024
DEFAULT_PART_SIZE = 16 * MIB
MIN_PART_SIZE = 5 * MIB  # S3's minimum for every part but the last
MAX_PARTS = 10000  # S3's maximum number of parts
DEFAULT_CONCURRENCY = 4
READ_CHUNK = 1 * MIB
METADATA_SHA256 = 'sha256'
DEFAULT_REGION = 'us-east-1'


class S3Error(Exception):
    """A clear, user-facing failure of an object-storage operation."""


def require_boto3(module):
    """``module.fail_json`` with ``missing_required_lib`` when boto3 cannot be imported."""
    if not HAS_BOTO3:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('boto3'), exception=BOTO3_IMPORT_ERROR)


def _describe(exc):
    """A short message for a boto3/botocore exception (never the credentials)."""
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get('Error', {})
        status = exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
        return '%s%s: %s' % (error.get('Code', 'error'), ' (HTTP %s)' % status if status else '',
                             error.get('Message', '') or str(exc))
    return '%s: %s' % (type(exc).__name__, exc)


describe_error = _describe


def _status(exc):
    if HAS_BOTO3 and isinstance(exc, botocore.exceptions.ClientError):
        return exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode')
    return None


# AWX injects every variable of a credential type, the unset inputs as ''; to boto3 an empty
# AWS_ENDPOINT_URL or AWS_PROFILE is a (bad) value, so empty ones are dropped from this process.
EMPTY_MEANS_UNSET = ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN',
                     'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_S3', 'AWS_PROFILE', 'AWS_DEFAULT_PROFILE',
                     'AWS_REGION', 'AWS_DEFAULT_REGION')


def make_client(endpoint_url=None, region=None, access_key=None, secret_key=None, session_token=None,
                profile=None, validate_certs=True, retries=3, connect_timeout=10, read_timeout=60):
    """A boto3 S3 client. Unset credentials come from boto3's usual chain (env, profile, role)."""
    for name in EMPTY_MEANS_UNSET:
        if name in os.environ and not os.environ[name]:
            del os.environ[name]
    session_args = {}
    if profile:
        session_args['profile_name'] = profile
    if access_key or secret_key:
        session_args.update(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            aws_session_token=session_token or None)
    try:
        session = boto3.session.Session(**session_args)
    except botocore.exceptions.BotoCoreError as exc:  # e.g. ProfileNotFound
        raise S3Error('cannot set up the AWS session: %s' % _describe(exc))
    config_args = dict(retries={'max_attempts': retries, 'mode': 'standard'}, connect_timeout=connect_timeout,
                       read_timeout=read_timeout, s3={'addressing_style': 'path'} if endpoint_url else {})
    # boto3 >= 1.36 adds CRC checksums to every request by default, which several S3-compatible
    # stores reject; the parts carry Content-MD5 instead, which every store checks.
    for extra in ({'request_checksum_calculation': 'when_required',
                   'response_checksum_validation': 'when_required'}, {}):
        try:
            config = botocore.config.Config(**dict(config_args, **extra))
            break
        except TypeError:
            continue
    return session.client('s3', endpoint_url=endpoint_url or None,
                          region_name=region or session.region_name or DEFAULT_REGION,
                          verify=validate_certs, config=config)


def host_prefix(prefix, host):
    """``<prefix>/<host>/``, with no empty or traversing components."""
    if not host or '/' in host or host in ('.', '..'):
        raise S3Error('host must be a single non-empty name without "/", got %r' % (host,))
    parts = [part for part in (prefix or '').split('/') if part]
    if any(part in ('.', '..') for part in parts):
        raise S3Error('prefix must not contain "." or ".." components, got %r' % (prefix,))
    return '/'.join(parts + [host]) + '/'


def read_sidecar(path):
    """The SHA-256 hex digest and raw bytes of a local ``sha256sum`` sidecar; None when there is none."""
    try:
        raw = _layout.read_sidecar(path)
    except _layout.SidecarError as exc:
        raise S3Error(str(exc))
    return None if raw is None else (sidecar_digest(raw, path), raw)


def sidecar_digest(raw, where):
    """The SHA-256 a sidecar's bytes name; S3Error saying ``where`` they came from when they name none."""
    entry = _layout.parse_sidecar(raw)
    if entry is None:
        raise S3Error('%s is not a sha256sum line' % where)
    return entry[0]


def _open_source(path):
    """An fd on a regular file, not following a link at the last component."""
    try:
        fd, info = _fsutil.open_file_at(None, path, path)
    except _fsutil.UnsafePath as exc:
        raise S3Error(str(exc))
    except OSError as exc:
        raise S3Error('cannot open %s: %s' % (path, exc.strerror or exc))
    return fd, info.st_size


def file_sha256(fd, size):
    digest = hashlib.sha256()
    offset = 0
    while offset < size:
        chunk = os.pread(fd, min(READ_CHUNK * 8, size - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def head(client, bucket, key):
    """The HEAD response of ``key``, or None when it does not exist."""
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if _status(exc) == 404 or exc.response.get('Error', {}).get('Code') in ('404', 'NoSuchKey', 'NotFound'):
            return None
        raise S3Error('cannot read s3://%s/%s: %s' % (bucket, key, _describe(exc)))
    except botocore.exceptions.BotoCoreError as exc:
        raise S3Error('cannot reach the object store for s3://%s/%s: %s' % (bucket, key, _describe(exc)))


def metadata_sha256(head_response):
    """The SHA-256 in the object's user metadata (keys are case-insensitive), or None."""
    for name, value in (head_response or {}).get('Metadata', {}).items():
        if name.lower() == METADATA_SHA256:
            return value.lower()
    return None


def object_sha256(client, bucket, key, sink=None):
    """``(sha256 hex, size)`` of the object as read back from the store, streamed."""
    try:
        body = client.get_object(Bucket=bucket, Key=key)['Body']
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if sink is not None:
                    sink.write(chunk)
        finally:
            body.close()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise S3Error('cannot read back s3://%s/%s: %s' % (bucket, key, _describe(exc)))
    return digest.hexdigest(), size


def _get_object(client, bucket, key, size, **get_args):
    """At most ``size`` bytes of an object, or None when it does not exist."""
    try:
        body = client.get_object(Bucket=bucket, Key=key, **get_args)['Body']
        try:
            return body.read(size)
        finally:
            body.close()
    except botocore.exceptions.ClientError as exc:
        if _status(exc) == 404:
            return None
        raise S3Error('cannot read s3://%s/%s: %s' % (bucket, key, _describe(exc)))
    except botocore.exceptions.BotoCoreError as exc:
        raise S3Error('cannot read s3://%s/%s: %s' % (bucket, key, _describe(exc)))


def get_small(client, bucket, key, limit=_layout.SIDECAR_MAX_BYTES):
    """The bytes of a small object (a sidecar), or None when it does not exist."""
    raw = _get_object(client, bucket, key, limit + 1)
    if raw is not None and len(raw) > limit:
        raise S3Error('s3://%s/%s is too large for a sidecar' % (bucket, key))
    return raw


def get_first_bytes(client, bucket, key, count):
    """The first ``count`` bytes of an object (a ranged GET), or None when it does not exist."""
    raw = _get_object(client, bucket, key, count, Range='bytes=0-%d' % (count - 1))
    return None if raw is None else raw[:count]


class HashingReader(object):
    """A read-only file object over ``read(n)`` of another that hashes what passes (SHA-256)."""

    def __init__(self, read):
        self._read = read
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, size=-1):
        data = self._read(size)
        self.sha256.update(data)
        self.size += len(data)
        return data


def _fd_reader(fd, size):
    """HashingReader over a file descriptor with pread (the fd's offset is not used)."""
    state = {'offset': 0}

    def read(count=-1):
        if count is None or count < 0:
            count = size - state['offset']
        data = os.pread(fd, max(0, min(count, size - state['offset'])), state['offset']) if count else b''
        state['offset'] += len(data)
        return data
    return HashingReader(read)


def authenticate_backup(fd, size, digest, password, shown):
    """S3Error unless the file is a backup under ``password``: its whole envelope authenticates
    (AES-GCM tag) and the bytes checked hash to ``digest`` (the SHA-256 about to be uploaded)."""
    reader = _fd_reader(fd, size)
    try:
        envelope = EnvelopeReader(reader, password)
        while envelope.read(CHUNK_SIZE):
            pass
    except EnvelopeError as exc:
        raise S3Error('%s is not a valid backup under backup_password (%s); no object was replaced' % (shown, exc))
    if reader.sha256.hexdigest() != digest or reader.size != size:
        raise S3Error('%s changed while it was checked; no object was replaced' % shown)


def _part_size(size, part_size):
    part_size = max(int(part_size or DEFAULT_PART_SIZE), MIN_PART_SIZE)
    needed = -(-size // MAX_PARTS)
    return max(part_size, needed)


def _md5_b64(data):
    # Content-MD5 is the store's integrity check of each request body, not a security measure
    # (usedforsecurity=False keeps it working on FIPS hosts; Python 3.8 lacks the argument).
    try:
        digest = hashlib.md5(data, usedforsecurity=False)
    except TypeError:
        digest = hashlib.md5(data)  # nosec
    return base64.b64encode(digest.digest()).decode('ascii')


def _put_small(client, bucket, key, data, metadata):
    client.put_object(Bucket=bucket, Key=key, Body=data, ContentMD5=_md5_b64(data), Metadata=metadata,
                      ContentType='application/octet-stream')


def put_sidecar(client, bucket, key, raw):
    """Store a sidecar object (one PUT, replacing what the key held)."""
    _put_small(client, bucket, key, raw, {})


def _upload_multipart(client, bucket, key, fd, size, expected_sha256, part_size, concurrency):
    """Upload ``fd`` in parts; complete only when the bytes read hash to ``expected_sha256``.

    Any failure aborts the multipart upload (best effort: a store that is down cannot be told, and
    keeps the unfinished parts invisible until its own lifecycle rules clear them).
    """
    part_size = _part_size(size, part_size)
    created = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata={METADATA_SHA256: expected_sha256},
                                             ContentType='application/octet-stream')
    upload_id = created['UploadId']
    digest = hashlib.sha256()
    parts = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            pending = {}
            offset = 0
            number = 0
            while offset < size or pending:
                while offset < size and len(pending) < max(1, concurrency):
                    data = os.pread(fd, min(part_size, size - offset), offset)
                    if not data:
                        raise S3Error('the file shrank while it was uploaded')
                    digest.update(data)
                    number += 1
                    offset += len(data)
                    future = pool.submit(client.upload_part, Bucket=bucket, Key=key, UploadId=upload_id,
                                         PartNumber=number, Body=data, ContentMD5=_md5_b64(data))
                    pending[future] = number
                    del data
                done, dummy = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    part_number = pending.pop(future)
                    parts.append({'PartNumber': part_number, 'ETag': future.result()['ETag']})
        if digest.hexdigest() != expected_sha256:
            raise S3Error('the file changed while it was uploaded (SHA-256 %s, expected %s)'
                          % (digest.hexdigest(), expected_sha256))
        parts.sort(key=lambda part: part['PartNumber'])
        client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={'Parts': parts})
    except BaseException:
        try:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except Exception:  # pylint: disable=broad-except  # the original failure is what matters
            pass
        raise


def plan_remote_retention(objects, new_name, rules):
    """The backup names retention removes once ``new_name`` is stored (never ``new_name``)."""
    if not any(rules.values()):
        return []
    backups = []
    for item in objects:
        when = _layout.parse_backup_time(item['name'])
        if when is not None:
            backups.append((item['name'], when))
    if new_name not in [name for name, dummy in backups]:
        when = _layout.parse_backup_time(new_name)
        if when is not None:
            backups.append((new_name, when))
    dummy, prune = _retention.plan_retention(backups, **rules)
    return [name for name in prune if name != new_name]


def list_backups(client, bucket, prefix, host):
    """This host's backups under ``<prefix>/<host>/``, newest first (by the time in the name).

    Only objects named like nexusctl backups directly under the host's prefix are listed; another
    host's objects are never looked at. Each item: name, key, size, time, last_modified, sidecar
    (whether ``<key>.sha256`` exists).
    """
    base = host_prefix(prefix, host)
    keys = {}
    try:
        paginator = client.get_paginator('list_objects_v2')
        for page in paginator.paginate(Bucket=bucket, Prefix=base, Delimiter='/'):
            for entry in page.get('Contents', []):
                keys[entry['Key']] = entry
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise S3Error('cannot list s3://%s/%s: %s' % (bucket, base, _describe(exc)))
    found = []
    for key, entry in keys.items():
        name = key[len(base):]
        when = _layout.parse_backup_time(name)
        if when is None or '/' in name:
            continue
        modified = entry.get('LastModified')
        found.append({
            'name': name, 'key': key, 'size': entry.get('Size'), 'time': when.isoformat(),
            'last_modified': modified.isoformat() if isinstance(modified, datetime.datetime) else None,
            'sidecar': key + _layout.SIDECAR_SUFFIX in keys,
        })
    found.sort(key=lambda item: (item['time'], item['name']), reverse=True)
    return found


def filter_before(backups, before):
    """The backups whose name time is strictly before ``before`` (a datetime; None: all)."""
    if before is None:
        return list(backups)
    return [item for item in backups if datetime.datetime.fromisoformat(item['time']) < before]


def parse_before(value):
    """A naive local datetime from an ISO 8601 date or date-time (as in the backup names)."""
    if value in (None, ''):
        return None
    text = str(value).strip().replace(' ', 'T')
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.datetime.strptime(text, '%Y-%m-%d')
        except ValueError:
            raise S3Error('before must be an ISO 8601 date or date-time such as 2025-12-04T00:15:00, got %r'
                          % (value,))
    return when.replace(tzinfo=None)


def _verify_remote(client, bucket, key, size, digest, sidecar_key, sidecar_raw):
    """Size by HEAD, SHA-256 by reading the object back; the sidecar object byte for byte."""
    info = head(client, bucket, key)
    if info is None:
        raise S3Error('s3://%s/%s is missing after the upload' % (bucket, key))
    if info.get('ContentLength') != size:
        raise S3Error('s3://%s/%s holds %s bytes, the file %d' % (bucket, key, info.get('ContentLength'), size))
    stored = metadata_sha256(info)
    if stored and stored != digest:
        raise S3Error('s3://%s/%s has SHA-256 %s in its metadata, the file %s' % (bucket, key, stored, digest))
    remote_digest, remote_size = object_sha256(client, bucket, key)
    if remote_digest != digest or remote_size != size:
        raise S3Error('s3://%s/%s reads back as SHA-256 %s (%d bytes), the file is %s (%d bytes)'
                      % (bucket, key, remote_digest, remote_size, digest, size))
    if sidecar_key is not None and get_small(client, bucket, sidecar_key) != sidecar_raw:
        raise S3Error('s3://%s/%s does not read back as the local sidecar' % (bucket, sidecar_key))


def upload_backup(client, bucket, prefix, host, src, rules=None, verify=True, check_mode=False,
                  part_size=DEFAULT_PART_SIZE, concurrency=DEFAULT_CONCURRENCY, overwrite=False,
                  backup_password=None, name=None):
    """Upload ``src`` and its sidecar to ``<prefix>/<host>/``, verify, then apply retention there.

    ``overwrite``: an existing object (or sidecar object) with other content is replaced, but only
    after ``src`` authenticated under ``backup_password``; without it, other content is an error.
    ``name``: the object's file name when it is not ``src``'s own (a temp file being uploaded).

    Returns a dict: key, sidecar_key, size, sha256, uploaded (bool), replaced (bool), verified,
    pruned (names), changed. Raises S3Error with a clear message; on failure nothing partial is
    left under the key.
    """
    rules = rules or {}
    name = name or os.path.basename(src)
    if overwrite and not backup_password:
        raise S3Error('overwrite needs backup_password: a file replaces an object only once it proved to be a '
                      'backup under that password')
    if _layout.parse_backup_time(name) is None and any(rules.values()):
        raise S3Error('retention needs a backup named like nexusctl (%s), got %s' % (_layout.BACKUP_NAME_EXAMPLE, name))
    base = host_prefix(prefix, host)
    key = base + name
    sidecar_key = key + _layout.SIDECAR_SUFFIX
    if check_mode and not os.path.lexists(src):
        # A check-mode run of the backup reports the file it would write without writing it.
        return dict(key=key, sidecar_key=sidecar_key, size=None, sha256=None, uploaded=True, replaced=False,
                    verified=False, pruned=plan_remote_retention(list_backups(client, bucket, prefix, host), name, rules),
                    changed=True)
    fd, size = _open_source(src)
    try:
        local_sidecar = read_sidecar(src + _layout.SIDECAR_SUFFIX) if name == os.path.basename(src) else None
        digest = file_sha256(fd, size)
        if local_sidecar is not None and local_sidecar[0] != digest:
            raise S3Error('%s does not match its sidecar (SHA-256 %s, sidecar %s); not uploaded'
                          % (src, digest, local_sidecar[0]))
        sidecar_raw = local_sidecar[1] if local_sidecar is not None else _layout.sidecar_line(digest, name).encode('utf-8')

        never = ('; an existing object is never replaced (overwrite=different replaces it with a file that '
                 'opens with backup_password)')
        existing = head(client, bucket, key)
        differs = False
        if existing is not None:
            if existing.get('ContentLength') != size:
                differs = True
                if not overwrite:
                    raise S3Error('s3://%s/%s already exists with different content (%s bytes, the file %d)%s'
                                  % (bucket, key, existing.get('ContentLength'), size, never))
            else:
                stored = metadata_sha256(existing) or object_sha256(client, bucket, key)[0]
                differs = stored != digest
                if differs and not overwrite:
                    raise S3Error('s3://%s/%s already exists with different content (SHA-256 %s, the file %s)%s'
                                  % (bucket, key, stored, digest, never))
        existing_sidecar = get_small(client, bucket, sidecar_key)
        stale_sidecar = False
        if existing_sidecar is not None:
            try:
                stale_sidecar = sidecar_digest(existing_sidecar, 's3://%s/%s' % (bucket, sidecar_key)) != digest
            except S3Error:
                if not overwrite:
                    raise
                stale_sidecar = True
            if stale_sidecar and not overwrite:
                raise S3Error('s3://%s/%s already exists and names another SHA-256%s' % (bucket, sidecar_key, never))
        replaced = differs or stale_sidecar
        if replaced:
            authenticate_backup(fd, size, digest, backup_password, src)
        send_data = existing is None or differs
        send_sidecar = existing_sidecar is None or stale_sidecar
        uploaded = send_data or send_sidecar
        objects = list_backups(client, bucket, prefix, host)
        pruned = plan_remote_retention(objects, name, rules)
        result = dict(key=key, sidecar_key=sidecar_key, size=size, sha256=digest, uploaded=uploaded,
                      replaced=replaced, verified=False, pruned=pruned, changed=bool(uploaded or pruned))
        if check_mode:
            return result
        try:
            if send_data:
                if size < max(MIN_PART_SIZE, int(part_size or DEFAULT_PART_SIZE)):
                    data = os.pread(fd, size, 0) if size else b''
                    if hashlib.sha256(data).hexdigest() != digest:
                        raise S3Error('the file changed while it was uploaded')
                    _put_small(client, bucket, key, data, {METADATA_SHA256: digest})
                else:
                    _upload_multipart(client, bucket, key, fd, size, digest, part_size, concurrency)
            # After the data object: a sidecar never names content the key does not hold yet.
            if send_sidecar:
                _put_small(client, bucket, sidecar_key, sidecar_raw, {})
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise S3Error('upload of %s to s3://%s/%s failed: %s; %s'
                          % (src, bucket, key if send_data else sidecar_key, _describe(exc),
                             'the object there is unchanged' if existing is not None else
                             'no object was stored under that key'))
        if verify:
            _verify_remote(client, bucket, key, size, digest, sidecar_key if send_sidecar else None, sidecar_raw)
            result['verified'] = True
        removed = []
        for victim in pruned:
            delete_backup(client, bucket, base + victim)
            removed.append(victim)
        result['pruned'] = removed
        return result
    finally:
        os.close(fd)


def delete_backup(client, bucket, key):
    """Delete a backup object and its sidecar."""
    try:
        client.delete_object(Bucket=bucket, Key=key + _layout.SIDECAR_SUFFIX)
        client.delete_object(Bucket=bucket, Key=key)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise S3Error('cannot delete s3://%s/%s: %s' % (bucket, key, _describe(exc)))


def _check_dest_dir(directory):
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        raise S3Error('dest %s does not exist' % directory)
    if not stat.S_ISDIR(info.st_mode):
        raise S3Error('dest %s is not a directory (symbolic links are not followed)' % directory)


def _local_sha256(path):
    """SHA-256 of an existing regular file at ``path`` (not following links), or None when absent."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise S3Error('%s exists and is not a regular file' % path)
    fd, size = _open_source(path)
    try:
        return file_sha256(fd, size)
    finally:
        os.close(fd)


def download_backup(client, bucket, prefix, host, name, dest_dir, check_mode=False):
    """Download ``<prefix>/<host>/<name>`` and its sidecar into ``dest_dir`` (files 0600, atomic).

    The object is streamed into a private temp file beside the target while its SHA-256 is
    computed, compared with the sidecar object (and the metadata when present), and only then
    renamed into place. An existing file with other content is never replaced.
    """
    if '/' in name or _layout.parse_backup_time(name) is None:
        raise S3Error('name must be a backup file name such as nexus-backup-2025-12-04-001500.tar.gz.enc, got %r'
                      % (name,))
    _check_dest_dir(dest_dir)
    key = host_prefix(prefix, host) + name
    info = head(client, bucket, key)
    if info is None:
        raise S3Error('s3://%s/%s does not exist' % (bucket, key))
    sidecar_raw = get_small(client, bucket, key + _layout.SIDECAR_SUFFIX)
    if sidecar_raw is None:
        raise S3Error('s3://%s/%s%s does not exist: the backup cannot be checked' % (bucket, key, _layout.SIDECAR_SUFFIX))
    expected = sidecar_digest(sidecar_raw, 's3://%s/%s%s' % (bucket, key, _layout.SIDECAR_SUFFIX))
    stored = metadata_sha256(info)
    if stored and stored != expected:
        raise S3Error('s3://%s/%s: its metadata says SHA-256 %s, its sidecar %s' % (bucket, key, stored, expected))
    path = os.path.join(dest_dir, name)
    sidecar_path = path + _layout.SIDECAR_SUFFIX
    present = _local_sha256(path)
    if present is not None and present != expected:
        raise S3Error('%s exists with other content (SHA-256 %s, the object %s); it is never replaced'
                      % (path, present, expected))
    result = dict(path=path, key=key, size=info.get('ContentLength'), sha256=expected,
                  changed=present is None)
    sidecar_present = os.path.lexists(sidecar_path)
    if sidecar_present:
        local = read_sidecar(sidecar_path)
        if local is None or local[0] != expected:
            raise S3Error('%s exists and names another SHA-256; it is never replaced' % sidecar_path)
    if check_mode:
        result['changed'] = present is None or not sidecar_present
        return result
    if present is None:
        try:
            with _fsutil.atomic_write(path, 0o600) as fh:
                digest, size = object_sha256(client, bucket, key, sink=fh)
                if digest != expected or size != info.get('ContentLength'):
                    raise S3Error('s3://%s/%s downloaded as SHA-256 %s (%d bytes), its sidecar says %s (%s bytes); '
                                  'nothing was kept' % (bucket, key, digest, size, expected, info.get('ContentLength')))
        except OSError as exc:
            raise S3Error('cannot write %s: %s' % (path, exc.strerror or exc))
    if not sidecar_present:
        with _fsutil.atomic_write(sidecar_path, 0o600) as fh:
            fh.write(sidecar_raw)
        result['changed'] = True
    return result


# The options every object-storage module takes (documented in the nexus.secrets.s3 doc fragment).
# Unset credentials fall back to the AWS variables (an empty variable counts as unset, as AWX injects
# unset inputs as ''), then to boto3's own chain: AWS_PROFILE, ~/.aws, instance or task roles.
S3_OPTIONS = dict(
    bucket=dict(type='str', required=True),
    prefix=dict(type='str', default='nexus-backups'),
    host=dict(type='str', required=True),
    endpoint_url=dict(type='str', aliases=['aws_endpoint_url', 's3_url'],
                      fallback=(nonempty_env_fallback, ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'])),
    region=dict(type='str', aliases=['aws_region'],
                fallback=(nonempty_env_fallback, ['AWS_REGION', 'AWS_DEFAULT_REGION'])),
    aws_access_key_id=dict(type='str', no_log=True, aliases=['access_key', 'aws_access_key'],
                           fallback=(nonempty_env_fallback, ['AWS_ACCESS_KEY_ID', 'AWS_ACCESS_KEY'])),
    aws_secret_access_key=dict(type='str', no_log=True, aliases=['secret_key', 'aws_secret_key'],
                               fallback=(nonempty_env_fallback, ['AWS_SECRET_ACCESS_KEY', 'AWS_SECRET_KEY'])),
    session_token=dict(type='str', no_log=True, aliases=['aws_session_token'],
                       fallback=(nonempty_env_fallback, ['AWS_SESSION_TOKEN', 'AWS_SECURITY_TOKEN'])),
    profile=dict(type='str', aliases=['aws_profile'],
                 fallback=(nonempty_env_fallback, ['AWS_PROFILE', 'AWS_DEFAULT_PROFILE'])),
    validate_certs=dict(type='bool', default=True),
)


def s3_argument_spec(**extra):
    spec = dict((name, dict(opts)) for name, opts in S3_OPTIONS.items())
    spec.update(extra)
    return spec


def client_from_params(params):
    """A client for the S3_OPTIONS in ``params``; S3Error on bad input."""
    if not params['bucket'] or '/' in params['bucket']:
        raise S3Error('bucket must be a bucket name, got %r' % (params['bucket'],))
    endpoint = params.get('endpoint_url') or None
    if endpoint and not endpoint.startswith(('http://', 'https://')):
        raise S3Error('endpoint_url must start with http:// or https://, got %r' % (endpoint,))
    if bool(params.get('aws_access_key_id')) != bool(params.get('aws_secret_access_key')):
        raise S3Error('aws_access_key_id and aws_secret_access_key go together '
                      '(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)')
    host_prefix(params['prefix'], params['host'])
    return make_client(endpoint_url=endpoint, region=params.get('region'),
                       access_key=params.get('aws_access_key_id'), secret_key=params.get('aws_secret_access_key'),
                       session_token=params.get('session_token'), profile=params.get('profile'),
                       validate_certs=params.get('validate_certs', True))
