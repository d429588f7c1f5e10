"""Export one server, import into an empty one: every path, value and metadata equal; reruns unchanged."""

from __future__ import annotations

import os
import stat

import pytest

from tests.integration.export_import.conftest import (
    EXPORT,
    IMPORT,
    SAMPLE,
    as_map,
    conn,
    load_json,
    read_all,
    run,
    seed,
)


@pytest.mark.slow
def test_round_trip_plain(nexus_server_factory, storage, tmp_path):
    source = nexus_server_factory(storage=storage)
    target = nexus_server_factory(storage=storage)
    seed(source, SAMPLE + [dict(path='app/x/versions', value='unreadable', metadata={})])
    dest = tmp_path / 'export.json'

    out = run(EXPORT, conn(source, dest=str(dest)), diff=True)
    assert out['changed'] is True and out['count'] == len(SAMPLE)
    assert [u['path'] for u in out['unreadable']] == ['app/x/versions']
    assert '/versions' in out['unreadable'][0]['reason']
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert out['diff']['after'].count('\n') == len(SAMPLE) and 'unreadable' not in out['diff']['after']
    document = load_json(dest)
    assert list(document) == ['exported_at', 'secrets']
    assert [s['path'] for s in document['secrets']] == sorted(s['path'] for s in SAMPLE)
    for entry in document['secrets']:
        assert list(entry)[:5] == ['path', 'value', 'version', 'created_at', 'created_by']
        assert ('metadata' in entry) == bool(as_map(SAMPLE)[entry['path']][1])
    assert as_map(document['secrets']) == as_map(SAMPLE)
    assert 'pa"ss' not in repr(out)  # values never in results

    # Same secrets again: the file is not rewritten, even though exported_at would differ.
    before = os.stat(dest)
    again = run(EXPORT, conn(source, dest=str(dest)))
    assert again['changed'] is False and again['sha256'] == out['sha256']
    assert os.stat(dest).st_ino == before.st_ino and os.stat(dest).st_mtime_ns == before.st_mtime_ns

    imported = run(IMPORT, conn(target, src=str(dest)), diff=True)
    assert imported['changed'] is True
    assert (imported['created'], imported['updated'], imported['unchanged'], imported['skipped_existing'],
            imported['failures']) == (len(SAMPLE), 0, 0, 0, [])
    assert imported['diff']['prepared'].startswith('created (%d):' % len(SAMPLE))
    assert read_all(target) == as_map(SAMPLE)

    rerun = run(IMPORT, conn(target, src=str(dest), overwrite=True))
    assert rerun['changed'] is False and rerun['unchanged'] == len(SAMPLE)


@pytest.mark.slow
def test_export_notices_changes_and_reports_them_in_diff(nexus_server, tmp_path):
    seed(nexus_server, SAMPLE)
    dest = tmp_path / 'export.json'
    run(EXPORT, conn(nexus_server, dest=str(dest)))
    client = nexus_server.client()
    assert client.put('other/one', value='2').status_code == 200
    assert client.delete('app/api/key').status_code == 204
    seed(nexus_server, [dict(path='new/one', value='n')])

    predicted = run(EXPORT, conn(nexus_server, dest=str(dest)), check=True, diff=True)
    assert predicted['changed'] is True and predicted['sha256'] is None
    assert 'other/one (changed)' in predicted['diff']['after']
    assert 'app/api/key' in predicted['diff']['before'] and 'app/api/key' not in predicted['diff']['after']
    assert '(1 added, 1 removed, 1 changed)' in predicted['diff']['after_header']
    assert as_map(load_json(dest)['secrets']) == as_map(SAMPLE)  # check mode wrote nothing

    out = run(EXPORT, conn(nexus_server, dest=str(dest)))
    assert out['changed'] is True
    exported = as_map(load_json(dest)['secrets'])
    assert exported['other/one'][0] == '2' and 'new/one' in exported and 'app/api/key' not in exported


@pytest.mark.slow
def test_check_mode_writes_no_file_and_mode_is_applied(nexus_server, tmp_path):
    seed(nexus_server, SAMPLE[:2])
    (tmp_path / 'out').mkdir()
    dest = tmp_path / 'out' / 'export.json'
    out = run(EXPORT, conn(nexus_server, dest=str(dest)), check=True)
    assert out['changed'] is True and not list((tmp_path / 'out').iterdir())
    out = run(EXPORT, conn(nexus_server, dest=str(dest), mode='0640'))
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o640
    out = run(EXPORT, conn(nexus_server, dest=str(dest), mode='0600'), check=True)
    assert out['changed'] is True and stat.S_IMODE(os.stat(dest).st_mode) == 0o640
    out = run(EXPORT, conn(nexus_server, dest=str(dest), mode='0640'))
    assert out['changed'] is False


@pytest.mark.slow
def test_prefix_is_literal_and_case_sensitive(nexus_server_factory, storage, tmp_path):
    server = nexus_server_factory(storage=storage)
    seed(server, SAMPLE)
    out = run(EXPORT, conn(server, dest=str(tmp_path / 'app.json'), prefix='app/'))
    paths = [s['path'] for s in load_json(tmp_path / 'app.json')['secrets']]
    assert paths == sorted(s['path'] for s in SAMPLE if s['path'].startswith('app/'))
    assert out['count'] == len(paths)
    # sqlite's LIKE treats "_" as a wildcard and ignores case: only the literal match may remain.
    run(EXPORT, conn(server, dest=str(tmp_path / 'us.json'), prefix='app_'))
    assert [s['path'] for s in load_json(tmp_path / 'us.json')['secrets']] == ['app_x/wild']

    target = nexus_server_factory(storage=storage)
    out = run(IMPORT, conn(target, src=str(tmp_path / 'app.json'), prefix='app/tls'))
    assert out['created'] == 1 and out['total'] == 1
    assert list(read_all(target)) == ['app/tls/key']
