"""nexus.secrets.nexus_backup_info: listing, sidecars, verification without restoring."""

from __future__ import annotations

import hashlib
import os
import shutil

import pytest

from tests.integration.restore import backups as b
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, fixture_path

MODULE = 'nexus.secrets.nexus_backup_info'
OLDEST = 'nexus-backup-2025-12-04-001500.tar.gz.enc'   # the nexusctl fixture, good sidecar
MIDDLE = 'nexus-backup-2025-12-05-001500.tar.gz.enc'   # ours, other keyring password, wrong sidecar
NEWEST = 'nexus-backup-2025-12-06-001500.tar.gz.enc'   # a flipped byte, no sidecar


def sidecar(path, digest=None):
    digest = digest or hashlib.sha256(open(path, 'rb').read()).hexdigest()
    with open(path + '.sha256', 'w') as fh:
        fh.write('%s  %s\n' % (digest, os.path.basename(path)))


@pytest.fixture
def backup_dir(tmp_path):
    directory = tmp_path / 'backups'
    directory.mkdir()
    shutil.copyfile(fixture_path('nexusctl-backup.tar.gz.enc'), str(directory / OLDEST))
    sidecar(str(directory / OLDEST))
    source = b.make_data_dir(tmp_path / 'source', live=4, key_password='another-key-password')
    b.make_backup(directory / MIDDLE, BACKUP_PASSWORD, source)
    sidecar(str(directory / MIDDLE), '0' * 64)
    data = bytearray((directory / OLDEST).read_bytes())
    data[100] ^= 0x04
    (directory / NEWEST).write_bytes(bytes(data))
    (directory / 'notes.txt').write_text('not a backup')
    os.utime(str(directory / OLDEST), (2000000000, 2000000000))  # mtime must not decide the order
    return directory


def names(out):
    return [entry['name'] for entry in out['backups']]


def test_lists_newest_first_with_sidecar_state_without_a_password(ansible_module, backup_dir):
    out = ansible_module(MODULE, {'path': str(backup_dir)})
    assert out['changed'] is False and out['verified'] is False
    assert names(out) == [NEWEST, MIDDLE, OLDEST]
    assert [e['sidecar'] for e in out['backups']] == ['missing', 'mismatch', 'ok']
    assert out['backups'][2]['time'] == '2025-12-04T00:15:00'
    assert out['backups'][2]['size'] == os.path.getsize(fixture_path('nexusctl-backup.tar.gz.enc'))
    assert 'valid' not in out['backups'][0]
    assert out['latest']['name'] == NEWEST


def test_verifies_each_backup_like_a_restore_would(ansible_module, backup_dir, tmp_path):
    before = b.snapshot(backup_dir)
    scratch = tmp_path / 'scratch'
    scratch.mkdir()
    out = ansible_module(MODULE, {'path': str(backup_dir), 'backup_password': BACKUP_PASSWORD,
                                  'key_password': KEYRING_PASSWORD, 'tmp_dir': str(scratch)})
    newest, middle, oldest = out['backups']
    assert out['verified'] is True and out['changed'] is False
    assert newest['valid'] is False and 'wrong backup password or the file is corrupt' in newest['error']
    assert middle['valid'] is False and 'key_password does not unlock' in middle['error']
    assert oldest['valid'] is True and oldest['error'] is None
    assert oldest['secrets'] == 12 and oldest['integrity'] == 'ok' and oldest['keyring_verified'] is True
    assert {m['name'] for m in oldest['members']} >= {'nexus.db', 'data/keys/master.key'}
    assert out['latest']['name'] == OLDEST
    assert b.snapshot(backup_dir) == before and os.listdir(str(scratch)) == []


def test_without_key_password_the_keyring_is_not_judged(ansible_module, backup_dir):
    out = ansible_module(MODULE, {'path': str(backup_dir)}, environment={'NEXUS_BACKUP_PASSWORD': BACKUP_PASSWORD})
    newest, middle, oldest = out['backups']
    assert middle['valid'] is True and middle['secrets'] == 4 and middle['keyring_verified'] is False
    assert out['latest']['name'] == MIDDLE


def test_check_mode_reports_the_same(ansible_module, backup_dir):
    out = ansible_module(MODULE, {'path': str(backup_dir / OLDEST), 'backup_password': BACKUP_PASSWORD},
                         check=True)
    assert out['changed'] is False and names(out) == [OLDEST] and out['backups'][0]['valid'] is True


def test_pattern_and_bad_paths(ansible_module, backup_dir, tmp_path):
    out = ansible_module(MODULE, {'path': str(backup_dir), 'pattern': '*2025-12-05*'})
    assert names(out) == [MIDDLE]
    missing = ansible_module(MODULE, {'path': str(tmp_path / 'nope')})
    assert missing['failed'] and 'neither a backup file nor a directory' in missing['msg']
    nopass = ansible_module(MODULE, {'path': str(backup_dir), 'verify': True})
    assert nopass['failed'] and 'needs backup_password' in nopass['msg']
    empty = tmp_path / 'empty'
    empty.mkdir()
    none = ansible_module(MODULE, {'path': str(empty), 'backup_password': BACKUP_PASSWORD})
    assert none['backups'] == [] and none['latest'] is None
