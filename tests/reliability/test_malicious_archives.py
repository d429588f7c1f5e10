"""A corpus of hostile backups, correctly encrypted (the GCM tag passes), against the real readers.

Traversal, absolute names, symlinks and hard links (also a link then a file through it), devices,
FIFOs, duplicates, unknown names, huge declared sizes, gzip bombs (40 GiB of zeros declared, with
and without an SQLite header in front) and a tar bomb. Each is refused by the archive reader, by
``nexus_restore`` and by ``nexus_backup_info``: clear message, nothing written outside staging,
the data directory byte-for-byte unchanged, no staging left behind.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _archive
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import EnvelopeReader
from tests.integration.restore.backups import leftovers, make_data_dir, snapshot
from tests.nexus_server.harness import refused_port
from tests.reliability import malicious
from tests.reliability.fuzzing import tree

PASSWORD = 'malicious-corpus-backup-password'
KEY_PASSWORD = 'malicious-corpus-key-password'
BOMB_WRITE_LIMIT = 256 * 1024 ** 2  # bombs carry 512 MiB of zeros; a sound reader stops far earlier


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """``root/{data,outside}`` and the hostile tars: a real data dir and the attack targets (cheap)."""
    root = tmp_path_factory.mktemp('malicious')
    data = make_data_dir(root / 'data', live=4, key_password=KEY_PASSWORD)
    (root / 'outside').mkdir()
    keys_dir = data / 'data' / 'keys'
    keys = {name: (keys_dir / name).read_bytes() for name in os.listdir(str(keys_dir))}
    outside = str(root / 'outside' / 'pwned')
    tars = malicious.corpus((data / 'nexus.db').read_bytes(), keys, outside)
    return dict(root=root, data=data, outside=outside, tars=tars)


@pytest.fixture(scope='module')
def world(corpus):
    """The corpus sealed as backups in ``root/backups`` (a KDF per file), plus the gzip bombs."""
    root = corpus['root']
    backups = root / 'backups'
    backups.mkdir()
    sealed = {}
    for case, tar_bytes in corpus['tars'].items():
        sealed[case] = malicious.seal_tar(backups / ('nexus-backup-%s.tar.gz.enc' % case), PASSWORD, tar_bytes)
    for case, path in malicious.bombs(root / 'outside', PASSWORD).items():
        sealed[case] = path.rename(backups / ('nexus-backup-%s.tar.gz.enc' % case))
    return dict(corpus, sealed=sealed)


def gzipped(tar_bytes):
    out = io.BytesIO()
    gz = malicious.GzipStream(out)
    gz.write(tar_bytes)
    gz.close()
    return out.getvalue()


def reason_in_process(world, case):
    """The archive reader's own refusal for ``case`` (decrypting the sealed file needs the KDF; the
    gzip layer under it is what the reader sees, so it gets that)."""
    parent = tempfile.mkdtemp(prefix='malicious-', dir=str(world['root']))
    staging = os.path.join(parent, 'staging')
    os.mkdir(staging, 0o700)
    if case in world['tars']:
        source = io.BytesIO(gzipped(world['tars'][case]))
    else:
        source = EnvelopeReader(open(str(world['sealed'][case]), 'rb'), PASSWORD)
    try:
        with pytest.raises(_archive.ArchiveError) as caught:
            _archive.extract_archive(source, staging)
        written = sum(size for is_dir, size in tree(staging).values() if not is_dir)
        assert set(os.listdir(parent)) == {'staging'}
    finally:
        shutil.rmtree(parent)
    return str(caught.value), written


CASES = sorted(list(malicious.corpus(b'', {'master.key': b''}, '/x/y').keys())
               + ['gzip-bomb-zeros-40GiB', 'gzip-bomb-sqlite-header-40GiB'])
UP = '../' * 12
# The reader's reason for each case (how the message starts); {outside} is the attack's target path,
# {rel} the same without its leading '/'.
EXPECTED = {
    'absolute-db-name': "member '/nexus.db' has an absolute path",
    'absolute-path': "member '{outside}' has an absolute path",
    'windows-drive': "member 'C:/nexus.db' has an absolute path",
    'traversal-dotdot': "member '../x' contains \"..\"",
    'traversal-deep': "member '%s{rel}' contains \"..\"" % UP,
    'traversal-inside-keys': "member 'data/keys/../../x.key' contains \"..\"",
    'traversal-after-valid': "member 'data/keys/../../../{rel}' contains \"..\"",
    'pax-path-traversal': "member '../../pax-escape' contains \"..\"",
    'symlink-db': "member 'nexus.db' is a symbolic link",
    'symlink-keys-then-file': "member 'data/keys' is a symbolic link",
    'hardlink-db': "member 'nexus.db' is a hard link",
    'hardlink-then-file': "member 'nexus.db' is a hard link",
    'char-device': "member 'nexus.db' is a device file",
    'block-device': "member 'data/keys/master.key' is a device file",
    'fifo': "member 'nexus.db' is a FIFO",
    'contiguous-file-type': "member 'nexus.db' has an unsupported type b'7'",
    'gnu-sparse': "member 'nexus.db' has an unsupported type b'S'",
    'duplicate-db': "member 'nexus.db' appears more than once",
    'duplicate-key': "member 'data/keys/master.key' appears more than once",
    'dir-named-db': "member 'nexus.db' should be a file but is a dir",
    'file-named-keys-dir': "member 'data/keys' should be a dir but is a file",
    'unknown-name': "unexpected member 'etc/cron.d/evil'",
    'unknown-top-level': "unexpected member 'data' ",
    'dot-slash-prefix': "unexpected member './nexus.db'",
    'key-outside-keys-dir': "unexpected member 'data/evil.key'",
    'hidden-key-name': "unexpected member 'data/keys/.hidden.key'",
    'nested-key-dir': "unexpected member 'data/keys/sub/x.key'",
    'huge-declared-db': "member 'nexus.db' is too large (%d bytes" % (100 * malicious.GIB),
    'huge-declared-key': "member 'data/keys/master.key' is too large (%d bytes" % (5 * 1024 ** 2),
    'pax-huge-size': "member 'data/keys/master.key' is too large (%d bytes" % (64 * malicious.GIB),
    'tar-bomb-members': 'the archive has more than %d members' % _archive.MAX_MEMBERS,
    'gzip-bomb-zeros-40GiB': 'the backup expands more than %d times (' % _archive.BOMB_RATIO,
    'gzip-bomb-sqlite-header-40GiB': 'the backup expands more than %d times (' % _archive.BOMB_RATIO,
}


def expected_reason(world, case):
    return EXPECTED[case].format(outside=world['outside'], rel=world['outside'].lstrip('/'))


def test_every_case_has_its_reason_pinned():
    assert sorted(EXPECTED) == CASES


@pytest.mark.parametrize('case', [pytest.param(c, marks=pytest.mark.slow) if c.startswith('gzip-bomb') else c
                                  for c in CASES])
def test_the_archive_reader_refuses(request, case):
    """The gzip bombs need the sealed files (512 MiB of zeros each): slow; the tars are read as gzip."""
    world = request.getfixturevalue('world' if case.startswith('gzip-bomb') else 'corpus')
    reason, written = reason_in_process(world, case)
    assert reason.startswith(expected_reason(world, case)), (case, reason)
    if case.startswith('gzip-bomb'):
        assert reason.endswith('a decompression bomb, not NEXUS data') and written < BOMB_WRITE_LIMIT, (reason, written)
    assert not os.path.lexists(world['outside'])


def module_play(path, module, args):
    path.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'under test', module: args, 'loop': '{{ cases }}', 'ignore_errors': True}]}]))
    return path


def no_traceback(result):
    text = json.dumps(result)
    assert 'Traceback' not in text and 'module_stderr' not in result and PASSWORD not in text, result


@pytest.mark.slow
def test_nexus_restore_refuses_every_case(world, ansible_playbook, tmp_path):
    root, data = world['root'], world['data']
    before, data_before = snapshot(root), snapshot(data)
    playbook = module_play(tmp_path / 'restore.yml', 'nexus.secrets.nexus_restore', {
        'src': '{{ item }}', 'backup_password': '{{ password }}', 'key_password': '{{ key_password }}',
        'data_dir': str(data), 'health_url': 'http://127.0.0.1:%d/health' % refused_port()})
    cases = sorted(world['sealed'])
    res = ansible_playbook(playbook, extra_vars={'cases': [str(world['sealed'][c]) for c in cases],
                                                 'password': PASSWORD, 'key_password': KEY_PASSWORD})
    results = res.task('under test')['results']
    assert len(results) == len(cases)
    for case, result in zip(cases, results):
        reason, dummy = reason_in_process(world, case)
        assert result.get('failed') is True and result.get('changed') is False, (case, result)
        assert 'decrypted, but its archive is unusable: %s; nothing was changed' % reason in result['msg'], \
            (case, result['msg'])
        no_traceback(result)
    assert snapshot(data) == data_before
    assert snapshot(root) == before  # nothing written outside staging, anywhere under the root
    assert leftovers(data, root) == []
    assert not os.path.lexists(world['outside'])


@pytest.mark.slow
def test_nexus_backup_info_refuses_every_case(world, ansible_module, tmp_path):
    root = world['root']
    before = snapshot(root)
    verify_tmp = tmp_path / 'verify-tmp'
    verify_tmp.mkdir()
    out = ansible_module('nexus.secrets.nexus_backup_info', {
        'path': str(root / 'backups'), 'backup_password': PASSWORD, 'key_password': KEY_PASSWORD,
        'verify': True, 'tmp_dir': str(verify_tmp)})
    run = out.pop('_run')
    assert out.get('failed') is not True, out
    no_traceback(out)
    assert PASSWORD not in run.stdout + run.stderr
    by_name = {b['name']: b for b in out['backups']}
    assert len(by_name) == len(world['sealed'])
    for case, path in world['sealed'].items():
        entry = by_name[os.path.basename(str(path))]
        reason, dummy = reason_in_process(world, case)
        assert entry['valid'] is False and reason in entry['error'], (case, entry)
    assert out['latest'] is None  # no valid backup among them
    assert os.listdir(str(verify_tmp)) == []
    assert snapshot(root) == before
    assert not os.path.lexists(world['outside'])
