"""nexusctl's export file imports cleanly, and our export of the result has nexusctl's shape."""

from __future__ import annotations

from tests.integration.export_import.conftest import (
    EXPECTED,
    EXPORT,
    IMPORT,
    NEXUSCTL_EXPORT,
    as_map,
    conn,
    load_json,
    read_all,
    run,
)


def test_nexusctl_export_imports_and_exports_back_in_the_same_format(nexus_server_factory, tmp_path):
    server = nexus_server_factory(storage='sqlite')
    theirs = load_json(NEXUSCTL_EXPORT)
    expected = load_json(EXPECTED)

    out = run(IMPORT, conn(server, src=NEXUSCTL_EXPORT))
    assert out['created'] == len(expected['live_secrets']) and out['failures'] == []
    assert read_all(server) == as_map(expected['live_secrets'])
    assert not set(expected['soft_deleted_paths']) & set(read_all(server))

    dest = tmp_path / 'ours.json'
    run(EXPORT, conn(server, dest=str(dest)))
    ours = load_json(dest)
    assert list(ours) == list(theirs)
    assert [s['path'] for s in ours['secrets']] == [s['path'] for s in theirs['secrets']]
    for mine, nexusctl in zip(ours['secrets'], theirs['secrets']):
        assert list(mine) == list(nexusctl), mine['path']  # same keys, same order, metadata omitted alike
        assert (mine['value'], mine.get('metadata')) == (nexusctl['value'], nexusctl.get('metadata'))
        assert mine['version'] == 1 and mine['created_by'] == 'admin-001'
