"""A backup never replaces an existing file: same-second backups, explicit names, shared directories.

The server and its files are real; only the filesystem capabilities (no hard links, no
RENAME_NOREPLACE) are injected faults.
"""

import datetime
import errno
import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _backup, _layout
from ansible_collections.nexus.secrets.plugins.module_utils._backup import BackupBusy, BackupError, create_backup

from tests.integration.backup.independent_reader import read_backup

PASSWORD = 'no-overwrite-password'
NOW = datetime.datetime(2026, 3, 4, 5, 6, 7)
FIRST = 'nexus-backup-2026-03-04-050607.tar.gz.enc'
SECOND = 'nexus-backup-2026-03-04-050608.tar.gz.enc'
THIRD = 'nexus-backup-2026-03-04-050609.tar.gz.enc'


@pytest.fixture
def src(nexus_server):
    client = nexus_server.client()
    for i in range(3):
        assert client.create('naming/secret-%d' % i, 'value-%d' % i).status_code == 201
    return str(nexus_server.db_path), str(nexus_server.keys_dir)


def backup(src, dest, **kwargs):
    return create_backup(src[0], src[1], str(dest), PASSWORD, **kwargs)


def sidecar_ok(path):
    with open(path + _layout.SIDECAR_SUFFIX) as fh:
        digest, name = fh.read().split()
    return name == os.path.basename(path) and digest == _backup.hashlib.sha256(open(path, 'rb').read()).hexdigest()


def test_two_backups_in_the_same_second_both_survive(src, tmp_path):
    dest = tmp_path / 'dest'
    first = backup(src, dest, now=NOW)
    first_bytes = (dest / FIRST).read_bytes()
    second = backup(src, dest, now=NOW)
    assert os.path.basename(first['path']) == FIRST and os.path.basename(second['path']) == SECOND
    assert (dest / FIRST).read_bytes() == first_bytes  # untouched
    assert sorted(os.listdir(str(dest))) == sorted(n + s for n in (FIRST, SECOND) for s in ('', '.sha256'))
    for result in (first, second):
        assert sidecar_ok(result['path'])
        assert _layout.parse_backup_time(result['path']) is not None  # retention still sees it
        assert [m['name'] for m in read_backup(result['path'], PASSWORD)][0] == 'nexus.db'
    assert _backup.predict_path(str(dest), now=NOW) == str(dest / THIRD)


def test_an_orphan_sidecar_or_a_link_reserves_the_name(src, tmp_path):
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)
    (dest / (FIRST + '.sha256')).write_text('orphan\n')
    os.symlink('/nonexistent', str(dest / SECOND))
    result = backup(src, dest, now=NOW)
    assert result['path'] == str(dest / THIRD)
    assert (dest / (FIRST + '.sha256')).read_text() == 'orphan\n' and os.path.islink(str(dest / SECOND))


def test_an_explicit_name_that_exists_fails_before_any_work(src, tmp_path):
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)
    (dest / FIRST).write_bytes(b'an older backup')
    with pytest.raises(BackupError, match='already exists; a backup never replaces'):
        backup(src, dest, name=FIRST)
    assert sorted(os.listdir(str(dest))) == [FIRST] and (dest / FIRST).read_bytes() == b'an older backup'


def test_a_name_taken_between_check_and_publish_moves_on(src, tmp_path, monkeypatch):
    """Another host writing into the same directory takes the name after our check: link() refuses."""
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)
    real_link = os.link

    def racing_link(source, target):
        if os.path.basename(target) == FIRST and not os.path.exists(target):
            with open(target, 'wb') as fh:
                fh.write(b'the other host')
        return real_link(source, target)

    monkeypatch.setattr(os, 'link', racing_link)
    result = backup(src, dest, now=NOW)
    assert result['path'] == str(dest / SECOND) and sidecar_ok(result['path'])
    assert (dest / FIRST).read_bytes() == b'the other host'
    assert not (dest / (FIRST + '.sha256')).exists()


def test_without_hard_links_rename_noreplace_is_used(src, tmp_path, monkeypatch):
    dest = tmp_path / 'dest'
    backup(src, dest, now=NOW)

    def no_link(source, target):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    monkeypatch.setattr(os, 'link', no_link)
    result = backup(src, dest, now=NOW)
    assert result['path'] == str(dest / SECOND) and sidecar_ok(result['path'])
    assert sidecar_ok(str(dest / FIRST))
    assert not [n for n in os.listdir(str(dest)) if n.startswith('.')]


def test_a_filesystem_that_cannot_refuse_a_replace_is_refused(src, tmp_path, monkeypatch):
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)

    def no_link(source, target):
        raise OSError(errno.EPERM, os.strerror(errno.EPERM))

    def no_renameat2(source, target):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(os, 'link', no_link)
    monkeypatch.setattr(_backup, '_renameat2_noreplace', no_renameat2)
    with pytest.raises(BackupError, match='neither hard links nor RENAME_NOREPLACE'):
        backup(src, dest, now=NOW)
    assert os.listdir(str(dest)) == []


def test_busy_is_its_own_error(src, tmp_path):
    import fcntl
    dest = tmp_path / 'dest'
    dest.mkdir(mode=0o700)
    fd = os.open(str(dest), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(BackupBusy, match='already running'):
            backup(src, dest, now=NOW)
    finally:
        os.close(fd)
