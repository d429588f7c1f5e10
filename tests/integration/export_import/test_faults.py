"""Injected faults (500/503 answers, dropped connections, latency): export and import still end with
every secret correct or precisely reported, and never write twice (versions stay exact)."""

from __future__ import annotations

import time

import pytest
import requests

from tests.integration.export_import.conftest import (
    EXPORT,
    IMPORT,
    SAMPLE,
    as_map,
    call,
    conn,
    load_json,
    read_all,
    run,
    seed,
    versions,
)

FAULTS = dict(error_rate=0.15, drop_rate=0.1, latency_ms=5, seed=20261130)
BULK = [dict(path='bulk/%03d' % i, value='value-%d' % i, metadata={'i': str(i)} if i % 3 else {})
        for i in range(40)]
SECRETS = SAMPLE + BULK


def token_despite_faults(server):
    for dummy in range(50):
        try:
            return server.token()
        except (RuntimeError, requests.ConnectionError):
            time.sleep(0.05)
    raise AssertionError('could not log in to the faulty server')


def faulty(factory, storage):
    server = factory(storage=storage, faults=FAULTS)
    token_despite_faults(server)
    return server


@pytest.mark.slow
def test_export_and_import_under_faults(nexus_server_factory, storage, tmp_path):
    source = faulty(nexus_server_factory, storage)
    seed(source, SECRETS)
    (tmp_path / 'out').mkdir()
    dest = tmp_path / 'out' / 'export.json'

    exported = run(EXPORT, conn(source, dest=str(dest), retries=6))
    assert exported.get('failed') is not True, exported.get('msg')
    assert exported['count'] == len(SECRETS) and exported['unreadable'] == []
    assert as_map(load_json(dest)['secrets']) == as_map(SECRETS)

    # Without retries: whatever fails is reported with its reason, the rest is right on the server.
    target = faulty(nexus_server_factory, storage)
    first = run(IMPORT, conn(target, src=str(dest), retries=0))
    if first.get('msg', '').startswith('cannot list the secrets'):
        failed_paths = set(as_map(SECRETS))  # the listing itself was hit: nothing was attempted
        assert read_all(target) == {}
    else:
        failed_paths = set(f['path'] for f in first['failures'])
        assert first['created'] + len(failed_paths) == len(SECRETS)
        assert all('HTTP 500' in f['reason'] or 'HTTP 503' in f['reason'] or 'cannot reach' in f['reason']
                   for f in first['failures']), first['failures']
        assert first['failed'] is (len(failed_paths) > 0)
    now = read_all(target)
    for path, content in as_map(SECRETS).items():
        assert now.get(path) == (None if path in failed_paths else content), path

    # With retries the same import completes: exactly the missing ones are created, nothing twice.
    second = run(IMPORT, conn(target, src=str(dest), retries=6))
    assert second['failures'] == [] and second['created'] == len(failed_paths)
    assert second['created'] + second['skipped_existing'] == len(SECRETS)
    assert read_all(target) == as_map(SECRETS)

    # Overwrite with some values changed behind our back: each differing secret gets exactly one version.
    changed = [s['path'] for s in BULK[:5]]
    client = target.client()
    for path in changed:
        assert call(client.put, path, value='drifted').status_code == 200
    third = run(IMPORT, conn(target, src=str(dest), retries=6, overwrite=True))
    assert third['failures'] == [] and (third['updated'], third['unchanged']) == (5, len(SECRETS) - 5)
    assert read_all(target) == as_map(SECRETS)
    for secret in BULK[:10]:
        assert versions(target, secret['path']) == (3 if secret['path'] in changed else 1), secret['path']
