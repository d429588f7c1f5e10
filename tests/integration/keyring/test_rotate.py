"""nexus.secrets.nexus_keyring_rotate: re-wrap the keyring under a new NEXUS_KEY_PASSWORD.

Proof: a reference server started with the new password serves every secret, and the old
password opens nothing any more. Plus: idempotence, check mode, wrong password, the live-server
guard, leftovers of a crash, links planted in the data dir, a filesystem without RENAME_EXCHANGE.
"""

from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _keyring_rotation, _layout, _swap
from tests.integration.keyring import keyrings as k
from tests.integration.restore import backups as b
from tests.nexus_server import keyring as server_keyring

MODULE = 'nexus.secrets.nexus_keyring_rotate'
OLD = 'old-keyring-password'
NEW = 'new keyring password with "quotes" and $dollar'


@pytest.fixture
def stopped_server(nexus_server_factory, tmp_path):
    """A reference server's data dir with secrets in it, the server stopped; ``.values`` what it holds."""
    server = nexus_server_factory(workdir=tmp_path / 'nexus', key_password=OLD)
    client = server.client()
    server.values = {}
    for i in range(6):
        path, value = 'team-%d/secret' % i, 'value-%d-%s' % (i, os.urandom(6).hex())
        assert client.create(path, value).status_code == 201
        server.values[path] = value
    assert client.put('team-0/secret', 'second-version').status_code == 200
    server.values['team-0/secret'] = 'second-version'
    server.stop()
    return server


def args(data_dir, **extra):
    out = {'data_dir': str(data_dir), 'key_password': OLD, 'new_key_password': NEW}
    out.update(extra)
    return out


def test_rotate_then_the_server_serves_every_secret_with_the_new_password(ansible_module, stopped_server):
    keys = stopped_server.keys_dir
    before_plain = k.plaintexts(keys, OLD)
    before_salts = k.salts(keys)
    out = ansible_module(MODULE, args(stopped_server.workdir))
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] is True and out['state'] == 'rotated' and out['removed'] == []
    assert k.opens_with(keys, [OLD, NEW]) == [NEW]
    assert k.plaintexts(keys, NEW) == before_plain  # the same keys, wrapped anew
    assert len(k.salts(keys)) == 1 and k.salts(keys) != before_salts
    assert stat.S_IMODE(os.stat(str(keys)).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(str(keys / n)).st_mode) == 0o600 for n in k.KEY_FILES)
    assert sorted(os.listdir(str(keys.parent))) == ['keys']  # no staging dir, no old files
    # Idempotent: already rotated.
    again = ansible_module(MODULE, args(stopped_server.workdir))
    assert again.get('failed') is not True and again['changed'] is False and again['state'] == 'already'
    # The proof: the server starts with the new password and serves every secret.
    stopped_server.key_password = NEW
    log_before = len(stopped_server.log_text())
    stopped_server.start()
    client = stopped_server.client()
    listing = client.list().json()
    assert listing['total'] == len(stopped_server.values)
    for path, value in stopped_server.values.items():
        resp = client.get(path)
        assert resp.status_code == 200 and resp.json()['value'] == value, (path, resp.text)
    assert server_keyring.NEW_KEYRING_MESSAGE not in stopped_server.log_text()[log_before:]
    assert k.plaintexts(keys, NEW) == before_plain  # the server did not replace the keyring


def test_wrong_old_password_changes_nothing(ansible_module, stopped_server):
    before = b.snapshot(stopped_server.workdir)
    out = ansible_module(MODULE, args(stopped_server.workdir, key_password='not-the-password'))
    assert out['failed'] is True and out['changed'] is False
    assert 'key_password does not unlock the keyring' in out['msg'] and 'nothing was changed' in out['msg']
    assert 'not-the-password' not in out['msg'] and NEW not in out['msg']
    assert b.snapshot(stopped_server.workdir) == before


def test_check_mode_predicts_and_writes_nothing(ansible_module, stopped_server):
    before = b.snapshot(stopped_server.workdir)
    out = ansible_module(MODULE, args(stopped_server.workdir), check=True)
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] is True and out['state'] == 'rotated'
    assert b.snapshot(stopped_server.workdir) == before
    assert ansible_module(MODULE, args(stopped_server.workdir))['changed'] is True
    after = ansible_module(MODULE, args(stopped_server.workdir), check=True)
    assert after['changed'] is False and after['state'] == 'already'


def test_refuses_while_the_server_runs_and_force_overrides(ansible_module, stopped_server):
    stopped_server.start()
    before = k.file_bytes(stopped_server.keys_dir)
    out = ansible_module(MODULE, args(stopped_server.workdir))
    assert out['failed'] is True and ('pid %d' % stopped_server.pid) in out['msg'], out['msg']
    assert [h['pid'] for h in out['holders']] == [stopped_server.pid]
    assert k.file_bytes(stopped_server.keys_dir) == before
    forced = ansible_module(MODULE, args(stopped_server.workdir, force=True))
    assert forced.get('failed') is not True and forced['changed'] is True
    assert len(forced['overridden']) == 1 and ('pid %d' % stopped_server.pid) in forced['overridden'][0]
    assert any('force=true' in w for w in forced.get('warnings', []))
    assert k.opens_with(stopped_server.keys_dir, [OLD, NEW]) == [NEW]


def test_key_password_from_the_environment_and_the_nexus_default(ansible_module, tmp_path):
    data_dir = tmp_path / 'nexus'
    server_keyring.save(data_dir / 'data' / 'keys', server_keyring.generate_plaintexts(), 'changeme-in-production')
    out = ansible_module(MODULE, {'data_dir': str(data_dir), 'new_key_password': 'from-default'})
    assert out.get('failed') is not True and out['changed'], out.get('msg')
    env = ansible_module(MODULE, {'data_dir': str(data_dir), 'new_key_password': NEW},
                         environment={'NEXUS_KEY_PASSWORD': 'from-default'})
    assert env.get('failed') is not True and env['changed'], env.get('msg')
    assert k.opens_with(data_dir / 'data' / 'keys', ['changeme-in-production', 'from-default', NEW]) == [NEW]


def layout_with_keyring(tmp_path, password=OLD):
    data_dir = tmp_path / 'nexus'
    server_keyring.save(data_dir / 'data' / 'keys', server_keyring.generate_plaintexts(), password)
    return _layout.Layout(str(data_dir))


def test_leftovers_of_an_interrupted_run_are_removed(tmp_path):
    layout = layout_with_keyring(tmp_path)
    stale = os.path.join(os.path.dirname(layout.keys_dir), _keyring_rotation.STAGING_PREFIX + 'deadbeef')
    os.mkdir(stale, 0o700)
    with open(os.path.join(stale, 'master.key'), 'w') as fh:
        fh.write('half-written')
    checked = _keyring_rotation.rotate(layout, OLD, NEW, check_mode=True)
    assert checked['changed'] and os.path.isdir(stale) and any('would be removed' in w for w in checked['warnings'])
    out = _keyring_rotation.rotate(layout, OLD, NEW)
    assert out['removed'] == [os.path.basename(stale)] and out['state'] == 'rotated'
    assert not os.path.exists(stale) and k.opens_with(layout.keys_dir, [OLD, NEW]) == [NEW]


@pytest.mark.parametrize('what', ['keys_dir', 'key_file', 'data_subdir'])
def test_links_in_the_data_dir_are_refused(tmp_path, what):
    layout = layout_with_keyring(tmp_path)
    real = tmp_path / 'real-keys'
    elsewhere = layout_with_keyring(tmp_path / 'other')
    if what == 'keys_dir':
        os.rename(layout.keys_dir, str(real))
        os.symlink(str(real), layout.keys_dir)
        target = real
    elif what == 'key_file':
        os.unlink(os.path.join(layout.keys_dir, 'age.key'))
        os.symlink(os.path.join(elsewhere.keys_dir, 'age.key'), os.path.join(layout.keys_dir, 'age.key'))
        target = elsewhere.keys_dir
    else:
        data = os.path.dirname(layout.keys_dir)
        os.rename(data, str(tmp_path / 'real-data'))
        os.symlink(os.path.dirname(elsewhere.keys_dir), data)
        target = elsewhere.keys_dir
    before = k.file_bytes(target)
    with pytest.raises(_keyring_rotation.RekeyFailed, match='symbolic link'):
        _keyring_rotation.rotate(layout, OLD, NEW)
    assert k.file_bytes(target) == before


def test_extra_entries_in_the_keys_dir_are_refused(tmp_path):
    layout = layout_with_keyring(tmp_path)
    with open(os.path.join(layout.keys_dir, 'notes.txt'), 'w') as fh:
        fh.write('x')
    with pytest.raises(_keyring_rotation.RekeyFailed, match='notes.txt'):
        _keyring_rotation.rotate(layout, OLD, NEW)
    assert k.opens_with(layout.keys_dir, [OLD, NEW]) == [OLD]


def test_a_filesystem_without_rename_exchange_changes_nothing(tmp_path, monkeypatch):
    layout = layout_with_keyring(tmp_path)
    before = k.file_bytes(layout.keys_dir)

    def unsupported(dir_fd, name_a, name_b):
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))

    monkeypatch.setattr(_keyring_rotation, 'exchange', unsupported)  # injected fault
    with pytest.raises(_keyring_rotation.RekeyFailed, match='cannot swap two directories atomically'):
        _keyring_rotation.rotate(layout, OLD, NEW)
    assert k.file_bytes(layout.keys_dir) == before
    assert sorted(os.listdir(os.path.dirname(layout.keys_dir))) == ['keys']


def test_the_exchange_really_swaps_two_directories(tmp_path):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'from-a').write_text('a')
    (tmp_path / 'b').mkdir()
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        _keyring_rotation.exchange(fd, 'a', 'b')
    finally:
        os.close(fd)
    assert os.listdir(str(tmp_path / 'b')) == ['from-a'] and os.listdir(str(tmp_path / 'a')) == []


@pytest.mark.parametrize('bad', ['', 'two\nlines'])
def test_bad_new_password_is_refused(tmp_path, bad):
    layout = layout_with_keyring(tmp_path)
    with pytest.raises(_keyring_rotation.RekeyFailed, match='new_key_password'):
        _keyring_rotation.rotate(layout, OLD, bad)
    assert k.opens_with(layout.keys_dir, [OLD]) == [OLD]


def test_an_unfinished_restore_is_finished_first(tmp_path):
    layout = layout_with_keyring(tmp_path)
    os.mkdir(layout.state_dir, 0o700)  # where nexus_restore keeps its journal
    with open(layout.journal_path, 'w') as fh:
        fh.write('{}')
    with pytest.raises(_keyring_rotation.RekeyFailed, match='interrupted restore'):
        _keyring_rotation.rotate(layout, OLD, NEW)


def test_a_running_restore_blocks_rotation_through_its_private_lock(tmp_path):
    layout = layout_with_keyring(tmp_path)
    state_fd = _swap.open_state_dir(layout)
    held = _swap.lock(layout, state_fd)
    try:
        with pytest.raises(_keyring_rotation.RekeyFailed, match='a restore or another key rotation is running'):
            _keyring_rotation.rotate(layout, OLD, NEW)
    finally:
        os.close(held)
        os.close(state_fd)
    assert _keyring_rotation.rotate(layout, OLD, NEW)['changed']
