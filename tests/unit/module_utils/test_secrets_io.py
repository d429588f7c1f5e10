"""The nexusctl export format: byte-exact writing, plain/enveloped reading, validation."""

from __future__ import annotations

import datetime
import json

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _crypto
from ansible_collections.nexus.secrets.plugins.module_utils import _secrets_io as io
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import encrypt_bytes
from tests.unit.module_utils._fixtures import fixture_path

NEXUSCTL_EXPORT = fixture_path('nexusctl-export.json')


def fixture_bytes():
    with open(NEXUSCTL_EXPORT, 'rb') as fh:
        return fh.read()


def test_rewriting_nexusctls_export_gives_the_same_bytes():
    raw = fixture_bytes()
    document = json.loads(raw)
    # Rebuild from GET-like answers (server order, extra fields, metadata absent when empty).
    answers = []
    for entry in reversed(document['secrets']):
        answer = dict(entry, id='x', updated_at='u', updated_by='v')
        answers.append(answer)
    rebuilt = io.build_export(answers, exported_at=document['exported_at'])
    assert io.dump_export(rebuilt) == raw


def test_go_html_escapes_and_sorted_metadata():
    document = io.build_export([{'path': 'a', 'value': '<b>&\u2028', 'version': 1, 'created_at': 't',
                                 'created_by': 'u', 'metadata': {'z': '1', 'a': '2'}}], exported_at='T')
    text = io.dump_export(document).decode()
    assert '"value": "\\u003cb\\u003e\\u0026\\u2028"' in text
    assert text.index('"a": "2"') < text.index('"z": "1"')
    assert json.loads(text)['secrets'][0]['value'] == '<b>&\u2028'
    assert list(json.loads(text)['secrets'][0]) == ['path', 'value', 'version', 'created_at', 'created_by',
                                                    'metadata']


def test_metadata_omitted_when_empty():
    document = io.build_export([{'path': 'a', 'value': 'v', 'metadata': {}}], exported_at='T')
    assert 'metadata' not in document['secrets'][0]


def test_exported_at_is_rfc3339_utc():
    stamp = datetime.datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=datetime.timezone.utc)
    assert io.utc_now_rfc3339(stamp) == '2026-01-02T03:04:05.12Z'
    assert io.utc_now_rfc3339(stamp.replace(microsecond=0)) == '2026-01-02T03:04:05Z'


def test_decode_plain_and_encrypted():
    raw = fixture_bytes()
    assert io.decode_export(raw)['secrets'][0]['path'] == 'prod/api/password'
    blob = encrypt_bytes('pw', raw)
    assert io.decode_export(blob, 'pw') == json.loads(raw)
    with pytest.raises(io.ExportFileError, match='export_password does not decrypt'):
        io.decode_export(blob, 'wrong')
    with pytest.raises(io.ExportFileError, match='set export_password'):
        io.decode_export(blob if not io.looks_like_json(blob) else b'\x00' + blob)


def test_envelope_whose_salt_starts_like_json_is_still_read():
    # About 1 envelope in 100 starts with blanks and "{": build one with such a salt on purpose.
    salt, nonce = b' \n{' + b'\x00' * 13, b'\x01' * 12
    key = _crypto.derive_key('pw', salt)
    lookalike = salt + nonce + _crypto.AESGCM(key).encrypt(nonce, b'{"secrets": []}', None)
    assert io.looks_like_json(lookalike)
    assert io.decode_export(lookalike, 'pw') == {'secrets': []}
    with pytest.raises(io.ExportFileError, match='not valid JSON'):
        io.decode_export(lookalike, 'wrong')


def test_malformed_json_is_reported():
    with pytest.raises(io.ExportFileError, match='not valid JSON'):
        io.decode_export(b'  {"secrets": [')
    with pytest.raises(io.ExportFileError, match='not valid JSON'):
        io.decode_export(b'{"secrets": [', 'pw')  # not an envelope either


def test_validate_lists_every_problem_without_values():
    document = {'secrets': [
        {'path': 'ok', 'value': 'v'},
        {'path': '', 'value': 'TOPSECRET'},
        {'path': 'novalue', 'value': ''},
        {'path': 'badmeta', 'value': 'TOPSECRET', 'metadata': {'k': 1}},
        'not an object',
        {'path': 'ok', 'value': 'TOPSECRET'},
        {'path': 'meta', 'value': 'v', 'metadata': {'k': 'x'}, 'version': 3},
    ]}
    secrets, problems = io.validate_export(document)
    assert [s['path'] for s in secrets] == ['ok', 'meta']
    assert secrets[1] == {'path': 'meta', 'value': 'v', 'metadata': {'k': 'x'}}
    assert len(problems) == 5
    assert 'secrets[1]: "path" must be a non-empty string' in problems
    assert 'secrets[5] (ok): the path is listed twice (first at secrets[0])' in problems
    assert 'TOPSECRET' not in ' '.join(problems)


@pytest.mark.parametrize('document, problem', [
    ([], 'not a JSON object'),
    ({'exported_at': 'x'}, 'no "secrets" list'),
    ({'secrets': {}}, 'no "secrets" list'),
])
def test_validate_top_level(document, problem):
    assert problem in io.validate_export(document)[1][0]


def test_summarize_problems_caps_the_list():
    text = io.summarize_problems(['p%d' % i for i in range(13)])
    assert text.endswith('p9; and 3 more')


@pytest.mark.parametrize('path, reachable', [
    ('prod/db/password', True), ('a.b/c..d/.e', True), ('x/versions', False), ('/a', False),
    ('a//b', False), ('a/./b', False), ('a/../b', False), ('a/', False), ('..', False),
])
def test_unreachable_paths(path, reachable):
    assert (io.unreachable_reason(path) is None) == reachable


def test_same_content_ignores_exported_at_and_path_diff():
    old = io.build_export([{'path': 'a', 'value': '1'}, {'path': 'b', 'value': '2'}], exported_at='T1')
    new = io.build_export([{'path': 'b', 'value': '2'}, {'path': 'a', 'value': '1'}], exported_at='T2')
    assert io.same_content(new, old)
    newer = io.build_export([{'path': 'b', 'value': '3'}, {'path': 'c', 'value': '1'}], exported_at='T3')
    assert not io.same_content(newer, old)
    assert io.path_diff(old, newer) == (['c'], ['a'], ['b'])
    assert io.path_diff(None, newer) == (['b', 'c'], [], [])


def test_read_export_file_is_bounded(tmp_path):
    import os
    path = tmp_path / 'e.json'
    path.write_bytes(b'{"secrets": []}')
    assert io.read_export_file(str(path), limit=15) == b'{"secrets": []}'
    with pytest.raises(io.ExportFileError, match='it is 15 bytes, more than'):
        io.read_export_file(str(path), limit=14)
    fifo = tmp_path / 'fifo'
    os.mkfifo(str(fifo))
    fd = os.open(str(fifo), os.O_RDWR | os.O_NONBLOCK)  # a writer, so opening it never blocks
    try:
        with pytest.raises(io.ExportFileError, match='not a regular file'):
            io.read_export_file(str(fifo))
    finally:
        os.close(fd)
