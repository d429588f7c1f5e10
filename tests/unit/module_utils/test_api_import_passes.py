"""nexus_import's per-secret logic against a scripted stub: lost answers, sqlite's 500 for existing
paths and soft-deleted paths, without ever repeating a write that landed."""

from __future__ import annotations

from ansible_collections.nexus.secrets.plugins.module_utils._import import Importer, import_in_passes
from tests.unit.module_utils.test_api import DROP, client_for, err, stub  # noqa: F401 (fixture)  # pylint: disable=unused-import

SECRET = {'path': 'a/b', 'value': 'v', 'metadata': {'k': 'x'}}
ON_SERVER = (200, {'path': 'a/b', 'value': 'v', 'metadata': {'k': 'x'}})


def run(stub, present=(), overwrite=False, check_mode=False, passes=4):
    client = client_for(stub, retries=0)
    results = {}
    import_in_passes(Importer(client, set(present), overwrite, check_mode), [dict(SECRET)], 1, passes,
                     lambda n: None, results)
    return results['a/b'], [(s['method'], s['path']) for s in stub.seen]


def test_create_whose_answer_was_lost_counts_as_created_once(stub):
    # POST dropped, re-check GET answers 500, next pass: POST says 500 (exists), GET shows our value.
    stub.script = [DROP, err(500, 'injected fault'), err(500, 'failed to create secret'), ON_SERVER]
    outcome, calls = run(stub)
    assert outcome == ('created', None)
    assert [m for m, dummy in calls] == ['POST', 'GET', 'POST', 'GET']


def test_sqlite_500_for_an_existing_path_is_a_skip(stub):
    stub.script = [err(500, 'failed to create secret'), (200, {'path': 'a/b', 'value': 'other'})]
    assert run(stub)[0] == ('skipped', None)


def test_soft_deleted_path_is_reported_after_the_passes(stub):
    stub.script = [err(500, 'failed to create secret'), err(404, 'secret not found')] * 3
    outcome, calls = run(stub, passes=3)
    assert outcome[0] == 'failed' and 'deleted on the server' in outcome[1]
    assert 'HTTP 500: failed to create secret, GET answers 404' in outcome[1]
    assert len(calls) == 6


def test_memory_409_for_a_deleted_path_is_final(stub):
    stub.script = [err(409, 'secret already exists'), err(404, 'secret not found')]
    outcome, calls = run(stub)
    assert 'HTTP 409: secret already exists' in outcome[1] and len(calls) == 2


def test_update_whose_answer_was_lost_is_not_repeated(stub):
    stub.script = [(200, {'path': 'a/b', 'value': 'old'}), DROP, ON_SERVER]
    outcome, calls = run(stub, present=['a/b'], overwrite=True)
    assert outcome == ('updated', None)
    assert [m for m, dummy in calls] == ['GET', 'PUT', 'GET']


def test_update_that_did_not_land_is_repeated_in_the_next_pass(stub):
    old = (200, {'path': 'a/b', 'value': 'old'})
    stub.script = [old, err(503, 'busy'), old, old, (200, {'path': 'a/b'})]
    outcome, calls = run(stub, present=['a/b'], overwrite=True)
    assert outcome == ('updated', None)
    assert [m for m, dummy in calls] == ['GET', 'PUT', 'GET', 'GET', 'PUT']


def test_check_mode_only_reads(stub):
    stub.script = [(200, {'path': 'a/b', 'value': 'old'})]
    assert run(stub, present=['a/b'], overwrite=True, check_mode=True)[0] == ('updated', None)
    assert run(stub, check_mode=True)[0] == ('created', None)
    assert [s['method'] for s in stub.seen] == ['GET']


def test_rejected_credentials_stop_the_run(stub):
    import pytest
    from ansible_collections.nexus.secrets.plugins.module_utils._api import AuthRejected
    stub.script = [err(401, 'authentication required')]
    results = {}
    importer = Importer(client_for(stub, retries=0), set(), False, False)
    with pytest.raises(AuthRejected) as info:
        import_in_passes(importer, [dict(SECRET), dict(SECRET, path='c/d')], 1, 4, lambda n: None, results)
    assert info.value.error.status == 401 and results == {}
    assert len(stub.seen) == 1  # the second secret was never tried
