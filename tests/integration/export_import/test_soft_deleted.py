"""Paths the server can never take: a soft-deleted path (create answers 500 on sqlite, 409 on memory, GET
404) and paths the router cannot reach are reported precisely; everything else is still imported."""

from __future__ import annotations

import json

import pytest

from tests.integration.export_import.conftest import IMPORT, conn, read_all, run, seed


@pytest.mark.slow
def test_deleted_and_unreachable_paths_are_reported(nexus_server_factory, storage, tmp_path):
    server = nexus_server_factory(storage=storage)
    seed(server, [dict(path='gone/one', value='old', metadata={})])
    assert server.client().delete('gone/one').status_code == 204
    src = tmp_path / 'in.json'
    src.write_text(json.dumps({'secrets': [
        dict(path='gone/one', value='new'),
        dict(path='fine/one', value='v1', metadata={'a': 'b'}),
        dict(path='bad/versions', value='v2'),
        dict(path='bad//double', value='v3'),
    ]}))

    out = run(IMPORT, conn(server, src=str(src)))
    assert out['failed'] is True
    assert out['msg'].startswith('3 of 4 secrets could not be imported')
    assert out['created'] == 1 and out['changed'] is True
    reasons = dict((f['path'], f['reason']) for f in out['failures'])
    assert sorted(reasons) == ['bad//double', 'bad/versions', 'gone/one']
    status = 500 if storage == 'sqlite' else 409
    assert reasons['gone/one'].startswith('the path was deleted on the server, and NEXUS never lets a '
                                          'deleted path be created again (create answered HTTP %d' % status)
    assert reasons['gone/one'].endswith('GET answers 404)')
    assert 'versions endpoint' in reasons['bad/versions'] and 'double /' in reasons['bad//double']
    assert read_all(server) == {'fine/one': ('v1', {'a': 'b'})}

    lenient = run(IMPORT, conn(server, src=str(src), fail_on_error=False, overwrite=True))
    assert lenient.get('failed') is not True
    assert lenient['changed'] is False and lenient['unchanged'] == 1 and len(lenient['failures']) == 3
