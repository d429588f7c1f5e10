"""nexus_backup_upload / nexus_backup_download against a real S3 server (rclone serve s3).

The files here are random bytes named like backups: these tests are about the transfer, the
verification, retention and the no-overwrite rule; the fleet tests upload and restore real backups.
"""

from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _s3
from tests.helpers.s3_server import ACCESS_KEY, SECRET_KEY, StopAfterBytes
from tests.integration.s3.conftest import BUCKET

UPLOAD = 'nexus.secrets.nexus_backup_upload'
DOWNLOAD = 'nexus.secrets.nexus_backup_download'
MIB = 1024 * 1024
NAME_NOT_WRITTEN = 'nexus-backup-2025-12-09-001500.tar.gz.enc'


def make_backup(directory, stamp, size, seed=b''):
    directory.mkdir(parents=True, exist_ok=True)
    name = 'nexus-backup-%s.tar.gz.enc' % stamp
    path = directory / name
    data = (seed + os.urandom(size))[:size]
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    (directory / (name + '.sha256')).write_text('%s  %s\n' % (digest, name))
    return path, digest


def upload(ansible_module, server, src, host='web1', check=False, endpoint=None, **extra):
    args = dict(src=str(src), bucket=BUCKET, host=host, endpoint_url=endpoint or server.endpoint_url)
    args.update(extra)
    env = server.env()
    env.pop('AWS_ENDPOINT_URL')
    return ansible_module(UPLOAD, args, check=check, environment=env)


def stored(server, host, name):
    return server.root / BUCKET / 'nexus-backups' / host / name


def core_upload(server, src, host):
    client = _s3.make_client(server.endpoint_url, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    return _s3.upload_backup(client, BUCKET, 'nexus-backups', host, str(src))


@pytest.mark.slow
def test_upload_multipart_verify_idempotent_and_retention(ansible_module, s3_server, tmp_path):
    first, first_sha = make_backup(tmp_path / 'b', '2025-12-01-001500', 12 * MIB + 123)
    second, second_sha = make_backup(tmp_path / 'b', '2025-12-02-001500', 3 * MIB)

    planned = upload(ansible_module, s3_server, first, check=True, part_size=5, keep_last=1)
    assert planned['changed'] and planned['uploaded'] and not planned['verified']
    assert not stored(s3_server, 'web1', first.name).exists()
    not_yet = upload(ansible_module, s3_server, first.with_name(NAME_NOT_WRITTEN), check=True)
    assert not_yet['changed'] and not_yet['uploaded'] and not_yet['sha256'] is None, not_yet

    # 12 MiB with 5 MiB parts: three parts, two in flight.
    res = upload(ansible_module, s3_server, first, part_size=5, concurrency=2, keep_last=1)
    assert res['changed'] and res['uploaded'] and res['verified'], res
    assert res['key'] == 'nexus-backups/web1/' + first.name and res['sha256'] == first_sha
    on_disk = stored(s3_server, 'web1', first.name)
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == first_sha
    assert stored(s3_server, 'web1', first.name + '.sha256').read_bytes() == (first.parent / (first.name + '.sha256')).read_bytes()
    head = s3_server.client().head_object(Bucket=BUCKET, Key=res['key'])
    assert {k.lower(): v for k, v in head['Metadata'].items()}['sha256'] == first_sha

    again = upload(ansible_module, s3_server, first, part_size=5, keep_last=1)
    assert not again['changed'] and not again['uploaded'] and again['verified']

    # keep_last=1: the newer backup replaces the older one, sidecar included; another host is untouched.
    other = upload(ansible_module, s3_server, first, host='web10', keep_last=1)
    assert other['changed']
    res = upload(ansible_module, s3_server, second, keep_last=1)
    assert res['pruned'] == [first.name]
    assert sorted(p.name for p in stored(s3_server, 'web1', '').iterdir()) == [second.name, second.name + '.sha256']
    assert stored(s3_server, 'web10', first.name).exists()
    assert hashlib.sha256(stored(s3_server, 'web1', second.name).read_bytes()).hexdigest() == second_sha


def test_existing_object_with_other_content_is_never_replaced(ansible_module, s3_server, tmp_path):
    mine, dummy = make_backup(tmp_path / 'a', '2025-12-01-001500', 1000)
    theirs, theirs_sha = make_backup(tmp_path / 'b', '2025-12-01-001500', 1000)
    assert core_upload(s3_server, theirs, 'web1')['verified']
    res = upload(ansible_module, s3_server, mine)
    assert res.get('failed') and 'never replaced' in res['msg'] and res['msg'].startswith('web1: '), res
    assert hashlib.sha256(stored(s3_server, 'web1', mine.name).read_bytes()).hexdigest() == theirs_sha


def test_file_that_does_not_match_its_sidecar_is_not_uploaded(ansible_module, s3_server, tmp_path):
    path, dummy = make_backup(tmp_path / 'a', '2025-12-01-001500', 1000)
    path.write_bytes(b'x' * 1000)
    res = upload(ansible_module, s3_server, path)
    assert res.get('failed') and 'does not match its sidecar' in res['msg']
    assert not stored(s3_server, 'web1', '').exists()


def test_server_stopped_mid_upload_fails_clearly_and_keeps_no_partial_object(ansible_module, s3_server, tmp_path):
    path, dummy = make_backup(tmp_path / 'a', '2025-12-01-001500', 40 * MIB)
    relay = StopAfterBytes(s3_server, limit=12 * MIB)
    try:
        res = upload(ansible_module, s3_server, path, host='db7', endpoint=relay.endpoint_url,
                     part_size=5, concurrency=1)
    finally:
        relay.close()
    assert relay.tripped.is_set()
    assert res.get('failed'), res
    assert res['msg'].startswith('db7: upload of %s to s3://%s/nexus-backups/db7/%s failed' % (path, BUCKET, path.name)), res['msg']
    assert 'no object was stored under that key' in res['msg']
    s3_server.start()
    listing = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix='nexus-backups/')
    assert listing.get('KeyCount', 0) == 0, listing.get('Contents')
    assert not stored(s3_server, 'db7', path.name).exists()


@pytest.mark.slow
def test_download_lists_only_its_host_picks_newest_before_and_checks_sha256(ansible_module, s3_server, tmp_path):
    env = s3_server.env()
    backups = {}
    for stamp in ('2025-12-01-001500', '2025-12-02-001500', '2025-12-03-001500'):
        path, digest = make_backup(tmp_path / 'src', stamp, 2000)
        backups[stamp] = digest
        assert core_upload(s3_server, path, 'db1')['verified']
    newer, dummy = make_backup(tmp_path / 'other', '2025-12-09-001500', 100)
    assert core_upload(s3_server, newer, 'db10')['verified']
    # Not a direct child of the host's prefix: never listed.
    nested = stored(s3_server, 'db1', 'old')
    nested.mkdir()
    (nested / 'nexus-backup-2025-12-08-001500.tar.gz.enc').write_bytes(b'x')

    base = dict(bucket=BUCKET, host='db1')
    listing = ansible_module(DOWNLOAD, dict(base, list_only=True), environment=env)
    assert [b['name'] for b in listing['backups']] == [
        'nexus-backup-2025-12-03-001500.tar.gz.enc', 'nexus-backup-2025-12-02-001500.tar.gz.enc',
        'nexus-backup-2025-12-01-001500.tar.gz.enc']
    assert all(b['key'].startswith('nexus-backups/db1/') and b['sidecar'] for b in listing['backups'])

    dest = tmp_path / 'dest'
    dest.mkdir()
    res = ansible_module(DOWNLOAD, dict(base, dest=str(dest), before='2025-12-03'), environment=env)
    assert res['changed'] and res['path'] == str(dest / 'nexus-backup-2025-12-02-001500.tar.gz.enc'), res
    got = dest / 'nexus-backup-2025-12-02-001500.tar.gz.enc'
    assert hashlib.sha256(got.read_bytes()).hexdigest() == backups['2025-12-02-001500']
    assert got.stat().st_mode & 0o777 == 0o600
    assert (dest / (got.name + '.sha256')).stat().st_mode & 0o777 == 0o600
    again = ansible_module(DOWNLOAD, dict(base, dest=str(dest), before='2025-12-03'), environment=env)
    assert not again['changed']

    # The stored object no longer matches its sidecar: refused, nothing left behind.
    victim = stored(s3_server, 'db1', 'nexus-backup-2025-12-03-001500.tar.gz.enc')
    victim.write_bytes(b'y' * 2000)
    s3_server.restart()
    res = ansible_module(DOWNLOAD, dict(base, dest=str(dest)), environment=env)
    assert res.get('failed') and 'nothing was kept' in res['msg'], res
    assert sorted(p.name for p in dest.iterdir()) == [got.name, got.name + '.sha256']

    res = ansible_module(DOWNLOAD, dict(base, dest=str(dest), before='2025-11-01'), environment=env)
    assert res.get('failed') and 'no backup of db1' in res['msg']


def test_bad_input_and_missing_credentials(ansible_module, s3_server, tmp_path):
    path, dummy = make_backup(tmp_path / 'a', '2025-12-01-001500', 100)
    res = ansible_module(UPLOAD, dict(src=str(path), bucket=BUCKET, host='../x',
                                      endpoint_url=s3_server.endpoint_url))
    assert res.get('failed') and 'host must be' in res['msg']
    res = ansible_module(UPLOAD, dict(src=str(path), bucket=BUCKET, host='h', endpoint_url=s3_server.endpoint_url,
                                      aws_access_key_id='wrong', aws_secret_access_key='wrong'))
    assert res.get('failed') and res['msg'].startswith('h: ') and '403' in res['msg'], res
    assert 'wrong' not in res['msg'].replace('h: ', '')


def test_upload_with_only_the_awx_injected_environment(ansible_module, s3_server, tmp_path):
    """The credential type's S3 fields, rendered as AWX does (unset inputs injected as ''), are enough."""
    from tests.quality.test_awx_credential_type import awx_render_env  # pylint: disable=import-outside-toplevel

    path, digest = make_backup(tmp_path / 'a', '2025-12-01-001500', 1000)
    env = awx_render_env({'nexus_url': 'http://127.0.0.1:1', 's3_access_key': ACCESS_KEY, 's3_secret_key': SECRET_KEY,
                          's3_endpoint_url': s3_server.endpoint_url})
    assert env['NEXUS_TOKEN'] == '' and env['AWS_ACCESS_KEY_ID'] == ACCESS_KEY
    env.update(AWS_PROFILE='', AWS_REGION='')  # empty, as other credentials may inject them
    res = ansible_module(UPLOAD, dict(src=str(path), bucket=BUCKET, host='awx1'), env=env)
    assert res['changed'] and res['verified'], res
    assert hashlib.sha256(stored(s3_server, 'awx1', path.name).read_bytes()).hexdigest() == digest


def test_download_file_options_check_mode_and_rerun(ansible_module, s3_server, tmp_path):
    env = s3_server.env()
    path, digest = make_backup(tmp_path / 'src', '2025-12-01-001500', 500)
    assert core_upload(s3_server, path, 'db2')['verified']
    dest = tmp_path / 'dest'
    dest.mkdir()
    got, sidecar = dest / path.name, dest / (path.name + '.sha256')
    base = dict(bucket=BUCKET, host='db2', dest=str(dest))
    ids = dict(owner=str(os.getuid()), group=str(os.getgid()))
    res = ansible_module(DOWNLOAD, dict(base, mode='u=rw,g=r', **ids), environment=env)
    assert res['changed'] and hashlib.sha256(got.read_bytes()).hexdigest() == digest, res
    for downloaded in (got, sidecar):
        assert downloaded.stat().st_mode & 0o7777 == 0o640
        assert (downloaded.stat().st_uid, downloaded.stat().st_gid) == (os.getuid(), os.getgid())
    again = ansible_module(DOWNLOAD, dict(base, mode='0640', **ids), environment=env)
    assert again['changed'] is False, again
    # Only the mode differs: predicted (with a diff), nothing touched; then the default 0600 is applied.
    planned = ansible_module(DOWNLOAD, base, environment=env, check=True, diff=True)
    assert planned['changed'] is True and got.stat().st_mode & 0o777 == 0o640, planned
    assert planned['diff']['before']['mode'] == '0640' and planned['diff']['after']['mode'] == '0600', planned
    res = ansible_module(DOWNLOAD, base, environment=env)
    assert res['changed'] and got.stat().st_mode & 0o777 == sidecar.stat().st_mode & 0o777 == 0o600, res
    refused = ansible_module(DOWNLOAD, dict(base, group='no-such-group-nexus'), environment=env)
    assert refused.get('failed') and "group 'no-such-group-nexus' does not exist" in refused['msg'], refused
