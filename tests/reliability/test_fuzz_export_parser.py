"""Fuzz the export parser (``_secrets_io.decode_export`` + ``validate_export``).

Random JSON-ish documents, wrong types, huge and odd strings, random and mutated bytes, plain and
encrypted. Every outcome is a parsed document judged exactly like an independent oracle, or an
``ExportFileError`` with a message that never quotes a secret value; then the real modules show a
clean ``msg`` for the nastiest files.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.nexus.secrets.plugins.module_utils import _secrets_io
from ansible_collections.nexus.secrets.plugins.module_utils import _crypto
from ansible_collections.nexus.secrets.plugins.module_utils._secrets_io import ExportFileError
from tests.reliability.fuzzing import fuzz_settings, memoised_kdf, mutate  # noqa: F401 (fixture)  # pylint: disable=unused-import

CANARY = 'FUZZCANARY-value'
PASSWORD = 'fuzz-export-password'

odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=20),
    st.sampled_from(['', '/', '//', 'a/../b', 'x/versions', '\u2028', '<&>', '\x00', '\ud800', ' ']),
    st.builds(lambda n: 'p' * n, st.integers(0, 200000)),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                    odd_text)
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                        max_size=4),
                           max_leaves=12)
values = st.one_of(st.builds(lambda s: CANARY + s, st.text(max_size=10)), json_values)
metadata = st.one_of(st.none(), st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
                     json_values)
items = st.one_of(
    st.fixed_dictionaries({'path': odd_text, 'value': values}, optional={'metadata': metadata,
                                                                         'version': json_values}),
    st.fixed_dictionaries({'path': st.sampled_from(['a', 'b/c', 'dup']),
                           'value': st.builds(lambda s: CANARY + s, st.text(max_size=5))}),
    json_values,
)
documents = st.one_of(
    st.fixed_dictionaries({'secrets': st.lists(items, max_size=6)},
                          optional={'exported_at': json_values, 'extra': json_values}),
    json_values,
)


SALT, NONCE = b's' * 16, b'n' * 12


def seal(plain):
    """nexusctl's envelope with a fixed salt and nonce (docs/nexus-behaviour.md §5), so one key derivation serves
    every example; decryption still goes through the real ``decrypt_bytes``."""
    key = _crypto.derive_key(PASSWORD, SALT)
    return SALT + NONCE + _crypto.AESGCM(key).encrypt(NONCE, plain, None)


def oracle(document):
    """Independent judgement: is the document a usable export, and how many secrets does it hold?"""
    if not isinstance(document, dict) or not isinstance(document.get('secrets'), list):
        return False, 0
    ok, seen = True, set()
    for item in document['secrets']:
        if not isinstance(item, dict):
            ok = False
            continue
        path, value, meta = item.get('path'), item.get('value'), item.get('metadata')
        if not (isinstance(path, str) and path and isinstance(value, str) and value):
            ok = False
        if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
            ok = False
        if isinstance(path, str) and path:
            ok = ok and path not in seen
            seen.add(path)
    return ok, len(document['secrets'])


def judge(document):
    """validate_export never raises, agrees with the oracle and never quotes a value."""
    secrets, problems = _secrets_io.validate_export(document)
    valid, count = oracle(document)
    assert (problems == []) is valid, (problems, document)
    if valid:
        assert len(secrets) == count
    for secret in secrets:
        assert isinstance(secret['path'], str) and secret['path']
        assert isinstance(secret['value'], str) and secret['value']
        assert all(isinstance(v, str) for v in secret['metadata'].values())
    summary = _secrets_io.summarize_problems(problems)
    assert CANARY not in summary and all(isinstance(p, str) for p in problems)


@fuzz_settings(300)
@given(documents)
def test_documents_parse_and_validate_like_the_oracle(document):
    blob = json.dumps(document, ensure_ascii=False).encode('utf-8', 'surrogatepass')
    try:
        parsed = _secrets_io.decode_export(blob)
    except ExportFileError as exc:
        # Only what JSON cannot carry: lone surrogates in UTF-8, or a top level that is not an object.
        assert CANARY not in str(exc)
        assert not _secrets_io.looks_like_json(blob) or b'\xed' in blob
        return
    judge(parsed)


@fuzz_settings(300)
@given(documents, st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=4),
       st.one_of(st.none(), st.integers(0, 10 ** 6)), st.binary(max_size=8))
def test_mutated_bytes_never_escape_as_another_exception(document, flips, cut, insert):
    blob = mutate(json.dumps(document).encode(), flips, cut, insert)
    try:
        parsed = _secrets_io.decode_export(blob)
    except ExportFileError as exc:
        assert str(exc) and CANARY not in str(exc)
        return
    judge(parsed)


@fuzz_settings(200)
@given(st.binary(max_size=4096))
def test_random_bytes_without_a_password(blob):
    try:
        judge(_secrets_io.decode_export(blob))
    except ExportFileError as exc:
        assert str(exc)


@fuzz_settings(120)
@given(documents, st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=2),
       st.one_of(st.none(), st.integers(0, 10 ** 6)))
def test_encrypted_exports_round_trip_or_fail_cleanly(memoised_kdf, document, flips, cut):
    plain = json.dumps(document).encode()
    blob = seal(plain)
    damaged = mutate(blob, flips, cut, b'')
    try:
        parsed = _secrets_io.decode_export(damaged, PASSWORD)
    except ExportFileError as exc:
        assert damaged != blob and CANARY not in str(exc)
        return
    # GCM: only the untouched envelope decrypts (a JSON-looking prefix is parsed as JSON first).
    assert damaged == blob or _secrets_io.looks_like_json(damaged)
    if damaged == blob:
        assert parsed == json.loads(plain)
    judge(parsed)


def test_pathological_documents():
    """Hand-picked inputs the strategies are unlikely to hit."""
    cases = [
        b'{"a":' + b'[' * 100000,                      # recursion depth
        b'{"secrets": [' + b'9' * 5000 + b']}',          # int digit limit
        b'{"secrets": [{"path": "a", "value": NaN}]}',
        b'{"secrets": [{"path": "a", "value": "\\ud800"}]}',
        b'\xef\xbb\xbf{"secrets": []}',                  # BOM: not JSON to us, not an envelope either
        b'{"secrets": {"path": "a"}}',
        b' \n\t{"secrets": []}',
        b'{"secrets": [' + b'{"path": "p", "value": "v"},' * 3 + b'{}]}',
        b'{"secrets": [{"path": "' + b'x' * (8 * 1024 * 1024) + b'", "value": "v"}]}',
    ]
    for blob in cases:
        try:
            judge(_secrets_io.decode_export(blob))
        except ExportFileError as exc:
            assert str(exc)


NASTY_FILES = {
    'deep-nesting.json': b'{"secrets": ' + b'[' * 200000,
    'wrong-types.json': json.dumps({'secrets': [{'path': 1, 'value': [CANARY]}, 'x', {'path': 'a', 'value': CANARY,
                                                                                      'metadata': {'k': 1}}]}).encode(),
    'huge-path.json': json.dumps({'secrets': [{'path': '', 'value': CANARY + 'x' * (4 * 1024 * 1024)}]}).encode(),
    'not-utf8.json': b'{"secrets": [{"path": "\xff\xfe", "value": "v"}]}',
    'top-level-list.json': b'[{"path": "a", "value": "b"}]',
    'binary.enc': bytes(range(256)) * 4,
}


@pytest.mark.slow
def test_import_module_gives_a_clean_msg_for_every_nasty_file(nexus_server, ansible_playbook, tmp_path):
    for name, blob in NASTY_FILES.items():
        (tmp_path / name).write_bytes(blob)
    playbook = tmp_path / 'nasty.yml'
    playbook.write_text(json.dumps([{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        {'name': 'import', 'nexus.secrets.nexus_import': {'url': nexus_server.url, 'token': '{{ token }}',
                                                           'src': '{{ item }}'},
         'loop': '{{ files }}', 'ignore_errors': True},
        {'name': 'export over junk', 'nexus.secrets.nexus_export': {'url': nexus_server.url, 'token': '{{ token }}',
                                                                    'dest': '{{ item }}'},
         'loop': '{{ files }}'},
    ]}]))
    files = [str(tmp_path / name) for name in NASTY_FILES]
    res = ansible_playbook(playbook, extra_vars={'token': nexus_server.token(), 'files': files})
    imports = res.task('import')['results']
    assert len(imports) == len(files)
    for item in imports:
        assert item['failed'] is True, item
        assert 'nothing was changed' in item['msg'], item['msg']
        assert 'Traceback' not in json.dumps(item) and 'module_stderr' not in item
        assert CANARY not in json.dumps(item)
    # nexus_export reads what dest holds to compare; junk there is simply replaced.
    exports = res.task('export over junk')['results']
    assert [e.get('failed', False) for e in exports] == [False] * len(files), exports
    assert nexus_server.client().list().json()['secrets'] == []
