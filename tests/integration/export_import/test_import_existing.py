"""Import into a server that already holds half the secrets, some different: exact counts, no needless
version bumps, exact check-mode predictions, unchanged reruns (sqlite answers 500 for existing paths)."""

from __future__ import annotations

import pytest

from tests.integration.export_import.conftest import (
    IMPORT,
    NEXUSCTL_EXPORT,
    as_map,
    conn,
    load_json,
    read_all,
    run,
    seed,
    versions,
)


def counts(out):
    return (out['created'], out['updated'], out['unchanged'], out['skipped_existing'], len(out['failures']))


@pytest.mark.slow
def test_half_present_with_and_without_overwrite(nexus_server_factory, storage):
    wanted = load_json(NEXUSCTL_EXPORT)['secrets']
    assert len(wanted) == 12
    server = nexus_server_factory(storage=storage)
    same = [dict(s) for s in wanted[:3]]
    other_value = [dict(s, value='old-' + s['value']) for s in wanted[3:5]]
    other_meta = [dict(wanted[5], metadata={'stale': 'yes'})]
    extra = [dict(path='zz/not/in/file', value='keep me', metadata={})]
    seed(server, same + other_value + other_meta + extra)
    differing = [s['path'] for s in other_value + other_meta]
    before = read_all(server)

    predicted = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT, overwrite=True), check=True, diff=True)
    assert predicted['changed'] is True and counts(predicted) == (6, 3, 3, 0, 0)
    assert 'updated (3):\n' + ''.join('  %s\n' % p for p in sorted(differing)) in predicted['diff']['prepared']
    assert read_all(server) == before  # check mode changed nothing

    kept = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT))
    assert kept['changed'] is True and counts(kept) == (6, 0, 0, 6, 0)
    assert all(versions(server, s['path']) == 1 for s in wanted)
    for path in differing:
        assert read_all(server)[path] == before[path]  # not overwritten

    again = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT))
    assert again['changed'] is False and counts(again) == (0, 0, 0, 12, 0)

    predicted = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT, overwrite=True), check=True)
    overwritten = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT, overwrite=True))
    assert counts(overwritten) == counts(predicted) == (0, 3, 9, 0, 0)
    assert overwritten['changed'] is True
    now = read_all(server)
    assert dict((p, now[p]) for p in as_map(wanted)) == as_map(wanted)
    assert now['zz/not/in/file'] == ('keep me', {})
    for secret in wanted:
        assert versions(server, secret['path']) == (2 if secret['path'] in differing else 1), secret['path']

    rerun = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT, overwrite=True))
    assert rerun['changed'] is False and counts(rerun) == (0, 0, 12, 0, 0)
    assert sum(versions(server, s['path']) for s in wanted) == 12 + 3
