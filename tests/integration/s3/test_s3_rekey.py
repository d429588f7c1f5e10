"""Backup-password rotation of local backups and their copies in a real S3 server (rclone serve s3):
nexus_backup_rekey with a bucket, nexus_backup_upload's overwrite=different, and
playbooks/rotate_backup_password.yml.

The estate: four real backups of a reference server under the old password, all four in the bucket
under <prefix>/<host>/, the oldest of them no longer on the host (remote retention keeps more).
"""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
import yaml

from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _s3
from ansible_collections.nexus.secrets.plugins.module_utils._backup import create_backup
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeError, decrypt_bytes
from tests.helpers.ansible import REPO, run_playbook
from tests.helpers.s3_server import ACCESS_KEY, SECRET_KEY
from tests.integration.s3.conftest import BUCKET
from tests.reliability import killpoints

OLD = 'Old-Backup-Password-1!'
NEW = 'New-Backup-Password-2?'
REKEY = 'nexus.secrets.nexus_backup_rekey'
UPLOAD = 'nexus.secrets.nexus_backup_upload'
HOST = 'nexus01'
PREFIX = 'nexus-backups'
NAMES = ['nexus-backup-2026-11-%02d-020000.tar.gz.enc' % day for day in (27, 28, 29, 30)]
REMOTE_ONLY = NAMES[0]


def sidecar_bytes(digest, name):
    return _layout.sidecar_line(digest, name).encode('utf-8')


class Estate(object):
    def __init__(self, server, dest, plain):
        self.names = list(NAMES)
        self.server = server
        self.dest = dest
        self.plain = plain  # name -> SHA-256 of the plaintext (the tar.gz)
        self.client = _s3.make_client(server.endpoint_url, access_key=ACCESS_KEY, secret_key=SECRET_KEY)

    def key(self, name):
        return '%s/%s/%s' % (PREFIX, HOST, name)

    def keys(self, names=None):
        return [self.key(name) for name in (self.names if names is None else names)]

    def local(self, name):
        return self.dest / name

    def remote_bytes(self, name):
        body = self.client.get_object(Bucket=BUCKET, Key=self.key(name))['Body']
        try:
            return body.read()
        finally:
            body.close()

    def remote_sidecar(self, name):
        return _s3.get_small(self.client, BUCKET, self.key(name) + '.sha256')

    def remote_names(self):
        return [item['name'] for item in _s3.list_backups(self.client, BUCKET, PREFIX, HOST)]

    def local_names(self):
        return sorted(p.name for p in self.dest.iterdir())

    def copies(self):
        """Every copy of every backup: (label, bytes)."""
        found = [('local ' + p.name, p.read_bytes()) for p in sorted(self.dest.glob('nexus-backup-*.tar.gz.enc'))]
        return found + [('remote ' + name, self.remote_bytes(name)) for name in self.names]

    def put_remote(self, name, data, sidecar=None):
        digest = hashlib.sha256(data).hexdigest()
        self.client.put_object(Bucket=BUCKET, Key=self.key(name), Body=data, Metadata={'sha256': digest})
        self.client.put_object(Bucket=BUCKET, Key=self.key(name) + '.sha256',
                               Body=sidecar if sidecar is not None else sidecar_bytes(digest, name))

    def args(self, **extra):
        args = {'path': str(self.dest), 'backup_password': OLD, 'new_backup_password': NEW, 'bucket': BUCKET,
                'host': HOST, 'endpoint_url': self.server.endpoint_url, 'aws_access_key_id': ACCESS_KEY,
                'aws_secret_access_key': SECRET_KEY}
        args.update(extra)
        return args


def opens_with(data):
    """{password label: plaintext SHA-256} for the passwords ``data`` fully decrypts with (GCM tag checked)."""
    found = {}
    for label, password in (('old', OLD), ('new', NEW)):
        try:
            found[label] = hashlib.sha256(decrypt_bytes(password, data)).hexdigest()
        except EnvelopeError:
            continue
    return found


def name_of(label):
    return label.split(' ', 1)[1]


def assert_every_copy_opens_with_exactly_one(estate, context=None):
    for label, data in estate.copies():
        found = opens_with(data)
        assert len(found) == 1 and list(found.values()) == [estate.plain[name_of(label)]], (label, found, context)


def assert_all_rotated_and_consistent(estate):
    for label, data in estate.copies():
        assert opens_with(data) == {'new': estate.plain[name_of(label)]}, label
    for name in estate.names:
        data = estate.remote_bytes(name)
        digest = hashlib.sha256(data).hexdigest()
        assert estate.remote_sidecar(name) == sidecar_bytes(digest, name), name
        head = estate.client.head_object(Bucket=BUCKET, Key=estate.key(name))
        assert {k.lower(): v for k, v in head['Metadata'].items()}['sha256'] == digest
        if name != REMOTE_ONLY:
            local = estate.local(name).read_bytes()
            assert local == data, 'the object is the rotated local file'
            assert (estate.dest / (name + '.sha256')).read_bytes() == sidecar_bytes(digest, name)
    assert not [n for n in estate.local_names() if n.startswith('.')], estate.local_names()


@pytest.fixture
def estate(nexus_server, s3_server, tmp_path):
    client = nexus_server.client()
    for i in range(4):
        assert client.create('rotate/s%d' % i, 'value-%d' % i).status_code == 201
    dest = tmp_path / 'backups' / HOST
    plain = {}
    made = Estate(s3_server, dest, plain)
    for name in NAMES:
        path = create_backup(str(nexus_server.workdir / 'nexus.db'), str(nexus_server.workdir / 'data' / 'keys'),
                             str(dest), OLD, name=name)['path']
        plain[name] = opens_with(open(path, 'rb').read())['old']
        assert _s3.upload_backup(made.client, BUCKET, PREFIX, HOST, path)['verified']
    os.unlink(str(made.local(REMOTE_ONLY)))
    os.unlink(str(made.local(REMOTE_ONLY)) + '.sha256')
    return made


def test_local_and_remote_copies_rotated_check_mode_idempotent(ansible_module, estate):
    before = estate.copies()
    names_before = (estate.local_names(), estate.remote_names())
    preview = ansible_module(REKEY, estate.args(), check=True)
    assert preview.get('failed') is not True, preview.get('msg')
    assert preview['changed']
    assert sorted(preview['rotated']) == [str(estate.local(n)) for n in NAMES[1:]]
    assert sorted(preview['remote_rotated']) == estate.keys(), 'the remote-only backup is predicted too'
    assert estate.copies() == before, 'check mode wrote nothing'

    out = ansible_module(REKEY, estate.args())
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and out['failures'] == []
    assert sorted(out['remote_rotated']) == estate.keys() and out['remote_sidecars_fixed'] == []
    assert_all_rotated_and_consistent(estate)
    # Names never change: retention sees the same backups, here and in the bucket.
    assert (estate.local_names(), estate.remote_names()) == names_before
    run = out['_run']
    for secret in (OLD, NEW, SECRET_KEY):
        assert secret not in run.stdout + run.stderr
    # What the DR role does: the rotated remote-only backup downloads, its sidecar checked.
    got = _s3.download_backup(estate.client, BUCKET, PREFIX, HOST, REMOTE_ONLY, str(estate.dest.parent))
    assert opens_with(open(got['path'], 'rb').read()) == {'new': estate.plain[REMOTE_ONLY]}

    again = ansible_module(REKEY, estate.args())
    assert again.get('failed') is not True, again.get('msg')
    assert again['changed'] is False and again['remote_rotated'] == [] and again['rotated'] == []
    assert sorted(again['remote_already']) == estate.keys()


def test_stale_remote_sidecar_is_fixed_only_for_an_object_that_authenticates(ansible_module, estate):
    """What a run stopped between the data object and its sidecar leaves; and a corrupt object."""
    assert ansible_module(REKEY, estate.args())['changed']
    stale, corrupt = NAMES[1], NAMES[2]
    old_line = sidecar_bytes('0' * 64, stale)
    estate.client.put_object(Bucket=BUCKET, Key=estate.key(stale) + '.sha256', Body=old_line)
    data = bytearray(estate.remote_bytes(corrupt))
    data[len(data) // 2] ^= 0xFF
    old_corrupt_sidecar = estate.remote_sidecar(corrupt)
    estate.put_remote(corrupt, bytes(data), sidecar=sidecar_bytes('1' * 64, corrupt))

    preview = ansible_module(REKEY, estate.args(), check=True)
    assert sorted(preview['remote_sidecars_fixed']) == estate.keys([stale, corrupt])
    assert estate.remote_sidecar(stale) == old_line

    out = ansible_module(REKEY, estate.args())
    assert out['failed'] and [f['key'] for f in out['failures']] == [estate.key(corrupt)], out
    assert 'does not authenticate' in out['failures'][0]['reason']
    assert out['remote_sidecars_fixed'] == [estate.key(stale)]
    digest = hashlib.sha256(estate.remote_bytes(stale)).hexdigest()
    assert estate.remote_sidecar(stale) == sidecar_bytes(digest, stale)
    assert estate.remote_sidecar(corrupt) == sidecar_bytes('1' * 64, corrupt) != old_corrupt_sidecar, \
        'a corrupt object keeps the sidecar that tells it is corrupt'


def test_corrupted_local_file_never_replaces_a_remote_object(ansible_module, estate):
    # Rotate the files only (no bucket), then damage one rotated file in the middle and give it a
    # matching sidecar: its header still opens with the new password, only the GCM tag can tell.
    local_only = {k: v for k, v in estate.args().items() if k in ('path', 'backup_password', 'new_backup_password')}
    assert ansible_module(REKEY, local_only)['changed']
    victim = NAMES[2]
    path = estate.local(victim)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    (estate.dest / (victim + '.sha256')).write_bytes(sidecar_bytes(hashlib.sha256(data).hexdigest(), victim))
    remote_before = estate.remote_bytes(victim)

    # The upload module alone: without overwrite the object is never replaced; with it, the file must authenticate.
    common = {'src': str(path), 'bucket': BUCKET, 'host': HOST, 'endpoint_url': estate.server.endpoint_url,
              'aws_access_key_id': ACCESS_KEY, 'aws_secret_access_key': SECRET_KEY}
    res = ansible_module(UPLOAD, common)
    assert res.get('failed') and 'never replaced' in res['msg'], res
    res = ansible_module(UPLOAD, dict(common, overwrite='different'))
    assert res.get('failed') and 'needs backup_password' in res['msg'], res
    res = ansible_module(UPLOAD, dict(common, overwrite='different', backup_password=NEW))
    assert res.get('failed') and 'is not a valid backup under backup_password' in res['msg'], res
    assert NEW not in res['_run'].stdout + res['_run'].stderr
    assert estate.remote_bytes(victim) == remote_before

    out = ansible_module(REKEY, estate.args())
    assert out['failed'] and [f.get('key') for f in out['failures']] == [estate.key(victim)], out
    assert 'not a valid backup' in out['failures'][0]['reason']
    assert estate.remote_bytes(victim) == remote_before
    assert opens_with(remote_before) == {'old': estate.plain[victim]}
    others = [n for n in NAMES if n != victim]
    assert sorted(out['remote_rotated']) == estate.keys(others)
    assert all(opens_with(estate.remote_bytes(n)) == {'new': estate.plain[n]} for n in others)


def test_upload_overwrite_replaces_with_a_valid_backup_and_fixes_the_sidecar(ansible_module, estate):
    name = NAMES[1]
    local_only = {'path': str(estate.local(name)), 'backup_password': OLD, 'new_backup_password': NEW}
    assert ansible_module(REKEY, local_only)['changed']
    common = {'src': str(estate.local(name)), 'bucket': BUCKET, 'host': HOST,
              'endpoint_url': estate.server.endpoint_url, 'aws_access_key_id': ACCESS_KEY,
              'aws_secret_access_key': SECRET_KEY, 'overwrite': 'different'}
    wrong = ansible_module(UPLOAD, dict(common, backup_password=OLD))
    assert wrong.get('failed') and 'not a valid backup' in wrong['msg']
    planned = ansible_module(UPLOAD, dict(common, backup_password=NEW), check=True)
    assert planned['changed'] and planned['replaced'] and opens_with(estate.remote_bytes(name)).keys() == {'old'}
    # NEXUS_BACKUP_PASSWORD from the controller's environment, through the action plugin.
    res = ansible_module(UPLOAD, common, env={'NEXUS_BACKUP_PASSWORD': NEW})
    assert res.get('failed') is not True, res.get('msg')
    assert res['changed'] and res['replaced'] and res['verified']
    assert estate.remote_bytes(name) == estate.local(name).read_bytes()
    assert estate.remote_sidecar(name) == (estate.dest / (name + '.sha256')).read_bytes()
    again = ansible_module(UPLOAD, dict(common, backup_password=NEW))
    assert not again['changed'] and not again['replaced']


@pytest.mark.slow
def test_killed_at_every_step_every_copy_opens_with_old_or_new_and_a_rerun_finishes(estate, tmp_path):
    # Two backups keep the runs short: one on the host and in the bucket, one in the bucket only.
    for name in NAMES[1:3]:
        _s3.delete_backup(estate.client, BUCKET, estate.key(name))
        os.unlink(str(estate.local(name)))
        os.unlink(str(estate.local(name)) + '.sha256')
    estate.names = [NAMES[0], NAMES[3]]
    pristine_local = {p.name: p.read_bytes() for p in estate.dest.iterdir()}
    pristine_remote = {name: (estate.remote_bytes(name), estate.remote_sidecar(name)) for name in estate.names}
    args = estate.args()

    def reset():
        for name in estate.local_names():
            if name not in pristine_local:
                os.unlink(str(estate.dest / name))
        for name, data in pristine_local.items():
            (estate.dest / name).write_bytes(data)
        for name, (data, sidecar) in pristine_remote.items():
            estate.put_remote(name, data, sidecar)

    res = killpoints.spawn('nexus_backup_rekey', args, tmp_path / 'calibration', record=True)
    assert res.returncode == 0, res.stderr
    phases, labels = res.record['phases'], res.record['labels']
    points = killpoints.choose_kill_points(phases, labels, ['rekey', 'remote'], {'rekey': 3, 'remote': 4},
                                           prefer=('os.replace', 'call _s3.'))
    wanted = [i for i, label in labels.items() if label.startswith('call _s3.')]
    assert len(wanted) == 4, labels  # two objects, each a data PUT then a sidecar PUT
    assert {str(i) for i in points} >= set(wanted), 'a kill right before each PUT'
    kills = 0
    for index in points:
        reset()
        res = killpoints.spawn('nexus_backup_rekey', args, tmp_path / ('kill-%d' % index), kill_at=index)
        assert res.killed, (index, res.stderr)
        kills += 1
        assert_every_copy_opens_with_exactly_one(estate, (index, res.report))
        res = killpoints.spawn('nexus_backup_rekey', args, tmp_path / ('after-%d' % index))
        assert res.returncode == 0, (index, res.stdout[-2000:], res.stderr[-2000:])
        assert_all_rotated_and_consistent(estate)
    assert kills >= 8


@pytest.mark.slow
def test_rotate_backup_password_playbook(estate, tmp_path):
    inventory = tmp_path / 'inventory.yml'
    inventory.write_text(yaml.safe_dump({'all': {'hosts': {HOST: {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    env = dict(estate.server.env(), NEXUS_BACKUP_PASSWORD=OLD, NEXUS_NEW_BACKUP_PASSWORD=NEW)
    extra = {'nexus_rotate_hosts': HOST, 'nexus_backup_dest': str(estate.dest.parent),
             'nexus_backup_s3_bucket': BUCKET}
    playbook = REPO / 'playbooks' / 'rotate_backup_password.yml'
    refused = run_playbook(playbook, inventory=str(inventory), env=env)
    assert refused.rc != 0 and 'Missing: nexus_rotate_hosts' in refused.stdout
    before = estate.copies()
    check = run_playbook(playbook, inventory=str(inventory), env=env, extra_vars=extra, check=True)
    assert check.rc == 0, check.stdout[-4000:] + check.stderr[-2000:]
    assert estate.copies() == before
    shown = check.task_results('Show what was rotated', HOST)[-1]['msg']
    assert shown.startswith('%s: would re-encrypt 3 local backups (0 already under the new password), 4 objects' % HOST), shown
    first = run_playbook(playbook, inventory=str(inventory), env=env, extra_vars=extra)
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert_all_rotated_and_consistent(estate)
    second = run_playbook(playbook, inventory=str(inventory), env=env, extra_vars=extra)
    assert second.rc == 0 and second.stats[HOST]['changed'] == 0, second.stdout[-4000:]
    for secret in (OLD, NEW, SECRET_KEY):
        assert secret not in first.stdout + first.stderr + second.stdout
