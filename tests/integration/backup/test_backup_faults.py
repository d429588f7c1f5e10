"""create_backup under injected faults: a full disk never leaves a partial backup or temp files.

ENOSPC is injected with a mock at the write layer (the only mocks here); the database, keyring and
server are real.
"""

import errno
import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _iothreads
from ansible_collections.nexus.secrets.plugins.module_utils._backup import BackupError, create_backup

from tests.helpers.disk_full import fill_disk_after
from tests.integration.backup.independent_reader import read_backup

PASSWORD = 'fault-backup-password'
NAME = 'nexus-backup-2026-01-01-000000.tar.gz.enc'
PREVIOUS = 'nexus-backup-2025-12-31-000000.tar.gz.enc'


@pytest.fixture
def live(nexus_server):
    client = nexus_server.client()
    for i in range(200):
        assert client.create('load/secret-%03d' % i, os.urandom(512).hex()).status_code == 201
    return nexus_server


@pytest.fixture
def dest(tmp_path):
    path = tmp_path / 'dest'
    path.mkdir(mode=0o700)
    # An earlier backup must survive a failed attempt untouched.
    (path / PREVIOUS).write_bytes(b'previous backup')
    (path / (PREVIOUS + '.sha256')).write_text('previous sidecar\n')
    return path


def assert_untouched(dest):
    assert sorted(os.listdir(str(dest))) == [PREVIOUS, PREVIOUS + '.sha256']
    assert (dest / PREVIOUS).read_bytes() == b'previous backup'
    assert (dest / (PREVIOUS + '.sha256')).read_text() == 'previous sidecar\n'


@pytest.mark.parametrize('fail_after', [0, 100, 256 * 1024])
def test_disk_full_while_writing_the_backup(live, dest, monkeypatch, fail_after):
    fill_disk_after(monkeypatch, fail_after)
    with pytest.raises(BackupError) as err:
        create_backup(str(live.db_path), str(live.keys_dir), str(dest), PASSWORD, name=NAME)
    assert 'No space left on device' in str(err.value) and NAME in str(err.value)
    assert_untouched(dest)


def test_disk_full_on_the_sidecar_fsync(live, dest, monkeypatch):
    """The backup data is complete, but its sidecar cannot be made durable: neither appears."""
    real_fsync = os.fsync
    calls = []

    def fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, 'fsync', fsync)
    with pytest.raises(BackupError, match='No space left on device'):
        create_backup(str(live.db_path), str(live.keys_dir), str(dest), PASSWORD, name=NAME)
    assert_untouched(dest)


def test_snapshot_destination_fills_up(live, dest, monkeypatch):
    """The running server's WAL is not empty, so the real snapshot code copies the database into the
    destination (SQLite's online backup); the destination then fills up (ENOSPC at the write layer)
    while the backup is written beside that copy. The copy goes too, and nothing else changes.
    (ENOSPC raised by SQLite itself while copying: test_disk_full.py, on a real small tmpfs.)"""
    from ansible_collections.nexus.secrets.plugins.module_utils import _sqlite

    copies = []
    real_online_backup = _sqlite._online_backup

    def observed(source, dest_path):  # the real copy, only watched
        real_online_backup(source, dest_path)
        copies.append((dest_path, os.path.getsize(dest_path)))

    monkeypatch.setattr(_sqlite, '_online_backup', observed)
    assert os.path.getsize(str(live.db_path) + '-wal') > 0
    fill_disk_after(monkeypatch, 64 * 1024)
    with pytest.raises(BackupError, match='No space left on device'):
        create_backup(str(live.db_path), str(live.keys_dir), str(dest), PASSWORD, name=NAME)
    assert len(copies) == 1, copies
    copy, size = copies[0]
    assert os.path.dirname(os.path.dirname(copy)) == str(dest) and size > 200 * 512  # in dest, every secret
    assert not os.path.exists(copy)
    assert_untouched(dest)


def test_success_publishes_beside_the_previous_file(live, dest):
    result = create_backup(str(live.db_path), str(live.keys_dir), str(dest), PASSWORD, name=NAME)
    assert result['path'] == str(dest / NAME) and result['secrets'] == 200
    assert sorted(os.listdir(str(dest))) == sorted([NAME, NAME + '.sha256', PREVIOUS, PREVIOUS + '.sha256'])
    assert (dest / PREVIOUS).read_bytes() == b'previous backup'
    assert [m['name'] for m in read_backup(result['path'], PASSWORD)][0] == 'nexus.db'
    assert (dest / (NAME + '.sha256')).read_text() == '%s  %s\n' % (result['sha256'], NAME)


def test_background_flush_error_fails_the_backup(live, dest, monkeypatch):
    """An I/O error while pushing the file to disk mid-way is not lost: the backup fails cleanly."""
    monkeypatch.setattr(_iothreads, 'FLUSH_EVERY', 4096)

    def fdatasync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, 'fdatasync', fdatasync)
    with pytest.raises(BackupError, match='Input/output error'):
        create_backup(str(live.db_path), str(live.keys_dir), str(dest), PASSWORD, name=NAME)
    assert_untouched(dest)
