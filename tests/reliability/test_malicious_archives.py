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
from tests.nexus_server.harness import free_port
from tests.reliability import malicious
from tests.reliability.fuzzing import tree

PASSWORD = 'malicious-corpus-backup-password'
KEY_PASSWORD = 'malicious-corpus-key-password'
BOMB_WRITE_LIMIT = 256 * 1024 ** 2  # bombs carry 512 MiB of zeros; a sound reader stops far earlier


@pytest.fixture(scope='module')
def world(tmp_path_factory):
    """``root/{data,outside,backups}``: a real data dir, the attack targets, the sealed corpus."""
    root = tmp_path_factory.mktemp('malicious')
    data = make_data_dir(root / 'data', live=4, key_password=KEY_PASSWORD)
    (root / 'outside').mkdir()
    keys_dir = data / 'data' / 'keys'
    keys = {name: (keys_dir / name).read_bytes() for name in os.listdir(str(keys_dir))}
    outside = str(root / 'outside' / 'pwned')
    tars = malicious.corpus((data / 'nexus.db').read_bytes(), keys, outside)
    backups = root / 'backups'
    backups.mkdir()
    sealed = {}
    for case, tar_bytes in tars.items():
        sealed[case] = malicious.seal_tar(backups / ('nexus-backup-%s.tar.gz.enc' % case), PASSWORD, tar_bytes)
    for case, path in malicious.bombs(root / 'outside', PASSWORD).items():
        sealed[case] = path.rename(backups / ('nexus-backup-%s.tar.gz.enc' % case))
    return dict(root=root, data=data, outside=outside, tars=tars, sealed=sealed)


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


@pytest.mark.parametrize('case', CASES)
def test_the_archive_reader_refuses(world, case):
    reason, written = reason_in_process(world, case)
    assert reason
    if case.startswith('gzip-bomb'):
        assert 'decompression bomb' in reason and written < BOMB_WRITE_LIMIT, (reason, written)
    if case == 'tar-bomb-members':
        assert 'more than %d members' % _archive.MAX_MEMBERS in reason
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
        'data_dir': str(data), 'health_url': 'http://127.0.0.1:%d/health' % free_port()})
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
