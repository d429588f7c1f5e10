"""nexus_backup_rekey: backups re-encrypted under a new password, verified, resumable, never unreadable."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._backup import create_backup
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeError, decrypt_file
from tests.reliability import killpoints

OLD = 'Old-Backup-Password-1!'
NEW = 'New-Backup-Password-2?'
REKEY = 'nexus.secrets.nexus_backup_rekey'


@pytest.fixture
def backups(nexus_server, tmp_path):
    """Three real backups of a live reference server, with sidecars."""
    client = nexus_server.client()
    for i in range(5):
        assert client.create('rekey/s%d' % i, 'value-%d' % i).status_code == 201
    dest = tmp_path / 'backups'
    paths = []
    for i in range(3):
        made = create_backup(str(nexus_server.workdir / 'nexus.db'), str(nexus_server.workdir / 'data' / 'keys'),
                             str(dest), OLD, name='nexus-backup-2026-12-0%d-020000.tar.gz.enc' % (i + 1))
        paths.append(made['path'])
    return dest, paths


class Sink(object):
    def __init__(self):
        self.sha256 = hashlib.sha256()

    def write(self, data):
        self.sha256.update(data)


def opens_with(path):
    """The passwords the file fully decrypts (GCM tag checked) with, and its plaintext's SHA-256."""
    found = {}
    for label, password in (('old', OLD), ('new', NEW)):
        sink = Sink()
        try:
            decrypt_file(path, password, sink)
        except EnvelopeError:
            continue
        found[label] = sink.sha256.hexdigest()
    return found


def sidecars_ok(dest):
    return subprocess.run(['sha256sum', '--check', '--strict', '--quiet'] +
                          [p for p in os.listdir(str(dest)) if p.endswith('.sha256')],
                          cwd=str(dest), capture_output=True, check=False).returncode == 0


def test_rotation_check_mode_idempotence_and_readback(ansible_module, backups):
    dest, paths = backups
    plain = {p: opens_with(p)['old'] for p in paths}
    before = {p: open(p, 'rb').read() for p in paths}

    preview = ansible_module(REKEY, {'path': str(dest), 'backup_password': OLD, 'new_backup_password': NEW}, check=True)
    assert preview['changed'] and sorted(preview['rotated']) == paths
    assert {p: open(p, 'rb').read() for p in paths} == before

    out = ansible_module(REKEY, {'path': str(dest), 'backup_password': OLD, 'new_backup_password': NEW})
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and sorted(out['rotated']) == paths and out['failures'] == []
    for path in paths:
        assert opens_with(path) == {'new': plain[path]}
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sidecars_ok(dest)
    assert not [n for n in os.listdir(str(dest)) if n.startswith('.')]
    run = out['_run']
    assert OLD not in run.stdout + run.stderr and NEW not in run.stdout + run.stderr

    again = ansible_module(REKEY, {'path': str(dest), 'backup_password': OLD, 'new_backup_password': NEW})
    assert again['changed'] is False and sorted(again['already']) == paths and again['rotated'] == []


def test_wrong_password_and_tampered_file_are_left_as_they_were(ansible_module, backups):
    dest, paths = backups
    wrong = ansible_module(REKEY, {'path': str(dest), 'backup_password': 'Not-The-Password-9!',
                                   'new_backup_password': NEW})
    assert wrong['failed'] and '3 of 3 backups were not rotated' in wrong['msg']
    assert 'opens with neither password' in wrong['msg']
    assert all(opens_with(p).keys() == {'old'} for p in paths)

    # Flip a byte in the middle of the first: the old password still "opens" its header, the tag fails.
    with open(paths[0], 'r+b') as fh:
        fh.seek(os.path.getsize(paths[0]) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    tampered = open(paths[0], 'rb').read()
    out = ansible_module(REKEY, {'path': str(dest), 'backup_password': OLD, 'new_backup_password': NEW})
    assert out['failed'] and [f['path'] for f in out['failures']] == [paths[0]]
    assert 'authentication failed' in out['failures'][0]['reason']
    assert open(paths[0], 'rb').read() == tampered
    assert sorted(out['rotated']) == paths[1:] and all(opens_with(p).keys() == {'new'} for p in paths[1:])


@pytest.mark.slow
def test_killed_at_every_step_each_backup_opens_with_exactly_one_password(backups, tmp_path):
    dest, paths = backups
    plain = {p: opens_with(p)['old'] for p in paths}
    args = {'path': str(dest), 'backup_password': OLD, 'new_backup_password': NEW}
    calibration = tmp_path / 'calibration'
    pristine = {p: open(p, 'rb').read() for p in paths}
    sidecars = {p: open(p + '.sha256', 'rb').read() for p in paths}
    res = killpoints.spawn('nexus_backup_rekey', args, calibration, record=True)
    assert res.returncode == 0, res.stderr
    phases, labels = res.record['phases'], res.record['labels']
    points = killpoints.choose_kill_points(phases, labels, ['rekey'], {'rekey': 12}, prefer=('os.replace',))
    kills = 0
    for index in points:
        for path in paths:  # back to the old password for each kill
            with open(path, 'wb') as fh:
                fh.write(pristine[path])
            with open(path + '.sha256', 'wb') as fh:
                fh.write(sidecars[path])
        res = killpoints.spawn('nexus_backup_rekey', args, tmp_path / ('kill-%d' % index), kill_at=index)
        assert res.killed, (index, res.stderr)
        kills += 1
        for path in paths:
            found = opens_with(path)
            assert len(found) == 1 and list(found.values()) == [plain[path]], (index, res.report, found)
        res = killpoints.spawn('nexus_backup_rekey', args, tmp_path / ('after-%d' % index))
        assert res.returncode == 0, (index, res.stderr)
        assert all(opens_with(p) == {'new': plain[p]} for p in paths)
        assert sidecars_ok(dest), index
        assert not [n for n in os.listdir(str(dest)) if n.startswith('.') and 'rekey' in n]
    assert kills >= 8
