"""nexus_restore stage_only and the restore that swaps the staged copy in (one decryption per recovery).

A staged copy lives in the root-only state dir beside the data dir and is used only while it still
matches: a backup file changed or replaced between staging and restoring is validated again (and
what is restored is the file as it is then, never the stale copy).
"""

from __future__ import annotations

import hashlib
import os
import shutil

from tests.integration.restore import backups as b
from tests.integration.restore.test_restore_module import (
    EXPECTED, MODULE, assert_serves_exactly_the_fixture, restore_args,
)
from tests.unit.module_utils._fixtures import BACKUP_PASSWORD, KEYRING_PASSWORD, fixture_path

STATE_DIR = b.RESTORE_STATE_DIR


def state_entries(data_dir):
    state = data_dir.parent / STATE_DIR
    return sorted(os.listdir(str(state))) if state.is_dir() else None


def staged_entries(data_dir):
    return [n for n in state_entries(data_dir) or [] if n.startswith(data_dir.name + '.staged')]


def stage_args(data_dir, src=None, **extra):
    args = restore_args(data_dir, stage_only=True, **extra)
    if src:
        args['src'] = str(src)
    return args


def test_stage_only_touches_nothing_then_the_restore_swaps_the_copy_in(ansible_module, nexus_server_factory, tmp_path):
    live = b.make_data_dir(tmp_path / 'nexus')
    (live / 'nexus.db-wal').write_bytes(b'a running server')
    before = b.snapshot(live)
    src = tmp_path / 'backup.tar.gz.enc'
    shutil.copy(fixture_path('nexusctl-backup.tar.gz.enc'), str(src))
    # A health URL is not even probed: the server may keep running while the backup is staged.
    staged = ansible_module(MODULE, stage_args(live, src, health_url='http://127.0.0.1:1/health'))
    assert staged.get('failed') is not True, staged.get('msg')
    assert staged['changed'] is False and staged['staged'] is True and staged['secrets'] == 12
    assert staged['keyring_verified'] is True and staged['staged_copy_used'] is False
    assert b.snapshot(live) == before and b.leftovers(live, tmp_path) == []
    assert staged_entries(live) == ['nexus.staged', 'nexus.staged-' + staged_entries(live)[1][-12:]]
    state = tmp_path / STATE_DIR
    assert all(os.stat(str(state / n)).st_mode & 0o077 == 0 for n in os.listdir(str(state)))

    out = ansible_module(MODULE, restore_args(live, src=str(src)))
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and out['staged_copy_used'] is True and 'staged_copy_note' not in out
    assert out['secrets'] == 12 and out['keyring_verified'] is True and out['integrity'] == 'ok'
    assert set(out['timings']) == {'validate', 'swap'}
    assert state_entries(live) == ['lock'] and b.leftovers(live, tmp_path) == []
    server = nexus_server_factory(workdir=live, key_password=KEYRING_PASSWORD)
    assert_serves_exactly_the_fixture(server)


def test_backup_changed_in_place_after_staging_is_not_swapped_in(ansible_module, tmp_path):
    live = b.make_data_dir(tmp_path / 'nexus')
    before = b.snapshot(live)
    src = tmp_path / 'backup.tar.gz.enc'
    shutil.copy(fixture_path('nexusctl-backup.tar.gz.enc'), str(src))
    assert ansible_module(MODULE, stage_args(live, src))['staged'] is True
    # One byte of the ciphertext flipped, size and modification time put back: only the SHA-256 tells.
    st = os.stat(str(src))
    with open(str(src), 'r+b') as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.utime(str(src), ns=(st.st_atime_ns, st.st_mtime_ns))
    out = ansible_module(MODULE, restore_args(live, src=str(src)))
    assert out['failed'] and 'cannot decrypt the backup' in out['msg'] and 'nothing was changed' in out['msg']
    assert b.snapshot(live) == before and b.leftovers(live, tmp_path) == []
    assert state_entries(live) == ['lock']


def test_backup_replaced_after_staging_is_validated_again_and_restored_as_it_is_now(ansible_module, tmp_path):
    live = b.make_data_dir(tmp_path / 'nexus', key_password=KEYRING_PASSWORD)
    src = tmp_path / 'backup.tar.gz.enc'
    shutil.copy(fixture_path('nexusctl-backup.tar.gz.enc'), str(src))
    assert ansible_module(MODULE, stage_args(live, src))['secrets'] == 12
    # Another valid backup under the same name (3 secrets, same keyring password): a new inode.
    other = tmp_path / 'other'
    b.make_data_dir(other, live=3, key_password=KEYRING_PASSWORD, prefix='other')
    replacement = b.make_backup(tmp_path / 'replacement.tar.gz.enc', BACKUP_PASSWORD, other)
    os.replace(str(replacement), str(src))
    out = ansible_module(MODULE, restore_args(live, src=str(src)))
    assert out.get('failed') is not True, out.get('msg')
    assert out['staged_copy_used'] is False and 'not the file that was staged' in out['staged_copy_note']
    assert out['secrets'] == 3 and out['changed']
    assert any('staged copy was not used' in w for w in out.get('warnings', []))
    assert state_entries(live) == ['lock'] and b.leftovers(live, tmp_path) == []


def test_full_check_asked_after_a_quick_staging_validates_again(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    assert ansible_module(MODULE, stage_args(data_dir))['integrity_check'] == 'quick'
    assert not data_dir.exists()  # staging never creates the data dir
    out = ansible_module(MODULE, restore_args(data_dir, integrity_check='full'))
    assert out['changed'] and out['staged_copy_used'] is False and out['integrity_check'] == 'full'
    assert 'integrity_check=full was asked' in out['staged_copy_note']
    assert state_entries(data_dir) == ['lock']


def test_use_staged_copy_false_removes_it_unused(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    assert ansible_module(MODULE, stage_args(data_dir))['staged'] is True
    out = ansible_module(MODULE, restore_args(data_dir, use_staged_copy=False))
    assert out['changed'] and out['staged_copy_used'] is False and 'staged_copy_note' not in out
    assert state_entries(data_dir) == ['lock']


def test_stage_only_in_check_mode_and_a_bad_backup_record_nothing(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    out = ansible_module(MODULE, stage_args(data_dir), check=True)
    assert out.get('failed') is not True and out['staged'] is False and out['secrets'] == 12
    assert state_entries(data_dir) is None and not data_dir.exists()
    out = ansible_module(MODULE, stage_args(data_dir, key_password='not-the-keyring-password'))
    assert out['failed'] and 'key_password does not unlock' in out['msg']
    assert state_entries(data_dir) == ['lock'] and not data_dir.exists()


def test_a_new_staging_replaces_the_old_copy(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    assert ansible_module(MODULE, stage_args(data_dir))['staged'] is True
    first = staged_entries(data_dir)
    assert ansible_module(MODULE, stage_args(data_dir))['staged'] is True
    second = staged_entries(data_dir)
    assert len(second) == 2 and second != first


def test_nexus_info_compares_with_the_staged_copy_without_decrypting(ansible_module, nexus_server_factory, tmp_path):
    data_dir = tmp_path / 'nexus'
    assert ansible_module(MODULE, restore_args(data_dir))['changed']
    server = nexus_server_factory(workdir=data_dir, key_password=KEYRING_PASSWORD)
    src = tmp_path / 'backup.tar.gz.enc'
    shutil.copy(fixture_path('nexusctl-backup.tar.gz.enc'), str(src))
    info_args = {'url': server.url, 'username': 'admin', 'password': 'admin', 'compare_backup': str(src),
                 'backup_password': BACKUP_PASSWORD, 'staged_data_dir': str(data_dir)}
    # Nothing staged yet: the backup is decrypted.
    out = ansible_module('nexus.secrets.nexus_info', info_args)
    assert out['backup_match']['matches'] is True and out['backup_match']['staged_copy_used'] is False
    assert ansible_module(MODULE, stage_args(data_dir, src, force=True))['staged'] is True
    out = ansible_module('nexus.secrets.nexus_info', info_args)
    assert out['backup_match']['matches'] is True and out['backup_match']['staged_copy_used'] is True
    assert out['backup_match']['backup_secrets'] == len(EXPECTED['live_secrets'])
    # A wrong backup password cannot hide behind the staged copy: once the file changed it is decrypted.
    os.utime(str(src), ns=(1, 1))
    out = ansible_module('nexus.secrets.nexus_info', dict(info_args, backup_password='wrong'))
    assert out['failed'] and 'cannot be compared' in out['msg']


def test_the_recorded_sha256_is_the_whole_backup_file_read_once(tmp_path, monkeypatch):
    """The SHA-256 recorded for the staged backup is hashed as the decryption reads the file; when that
    read did not see every byte, the file is read whole once more, so the record is never of a part."""
    from ansible_collections.nexus.secrets.plugins.module_utils import _layout, _staged, _swap

    src = tmp_path / 'backup.tar.gz.enc'
    shutil.copy(fixture_path('nexusctl-backup.tar.gz.enc'), str(src))
    expected = hashlib.sha256(src.read_bytes()).hexdigest()
    rereads = []
    real_identity = _staged.source_identity
    monkeypatch.setattr(_staged, 'source_identity', lambda path: rereads.append(path) or real_identity(path))
    for name, skip_last in (('whole', False), ('part', True)):
        layout = _layout.Layout(str(b.make_data_dir(tmp_path / name)))
        if skip_last:  # the hash misses the last chunk the reader hands over
            update = _staged._ReadHash.update
            monkeypatch.setattr(_staged._ReadHash, 'update',
                                lambda self, chunk: update(self, chunk) if self.size + len(chunk) < src.stat().st_size
                                else None)
        state_fd = _swap.open_state_dir(layout, create=True)
        try:
            dummy, manifest = _staged.stage(layout, state_fd, str(src), BACKUP_PASSWORD, key_password=KEYRING_PASSWORD)
        finally:
            os.close(state_fd)
        assert manifest['src_sha256'] == expected and manifest['src_id']['size'] == src.stat().st_size, name
        assert 'sha256' not in manifest['files']['nexus.db']
        assert rereads == ([str(src)] if skip_last else []), name
