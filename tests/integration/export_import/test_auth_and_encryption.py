"""A playbook: ``module_defaults: group/nexus.secrets.nexus`` sets the connection once; env fallbacks;
api_key, token and username/password auth; an encrypted export never holds plaintext on disk."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.helpers.ansible import run_playbook
from tests.integration.export_import.conftest import SAMPLE, as_map, read_all, seed
from ansible_collections.nexus.secrets.plugins.module_utils._envelope import decrypt_bytes

PLAYBOOK = [
    {'name': 'connection set once for the group', 'hosts': 'localhost', 'gather_facts': False,
     'module_defaults': {'group/nexus.secrets.nexus': {'url': '{{ src_url }}', 'api_key': '{{ api_key }}',
                                                       'workers': 3}},
     'tasks': [
         {'name': 'encrypted export', 'nexus.secrets.nexus_export': {'dest': '{{ out }}/enc.bin'},
          'environment': {'NEXUS_EXPORT_PASSWORD': '{{ export_password }}'}, 'register': 'enc'},
         {'name': 'encrypted export again', 'nexus.secrets.nexus_export': {
             'dest': '{{ out }}/enc.bin', 'export_password': '{{ export_password }}'}},
         {'name': 'a module outside the group runs untouched', 'ansible.builtin.stat': {'path': '{{ out }}'}},
     ]},
    {'name': 'connection from the environment', 'hosts': 'localhost', 'gather_facts': False,
     'environment': {'NEXUS_URL': '{{ dst_url }}', 'NEXUS_USERNAME': 'admin', 'NEXUS_PASSWORD': 'admin'},
     'tasks': [
         {'name': 'import the encrypted export', 'nexus.secrets.nexus_import': {
             'src': '{{ out }}/enc.bin', 'export_password': '{{ export_password }}'}},
         {'name': 'export with a token from NEXUS_TOKEN', 'nexus.secrets.nexus_export': {'dest': '{{ out }}/plain.json'},
          'environment': {'NEXUS_TOKEN': '{{ dst_token }}', 'NEXUS_USERNAME': '', 'NEXUS_PASSWORD': ''}},
     ]},
]


@pytest.mark.slow
def test_group_defaults_env_fallbacks_and_encrypted_export(nexus_server_factory, tmp_path):
    source = nexus_server_factory(storage='sqlite')
    target = nexus_server_factory(storage='memory')
    seed(source, SAMPLE)
    api_key = source.client().create_api_key('export').json()['key']
    out = tmp_path / 'out'
    out.mkdir()
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump(PLAYBOOK))
    res = run_playbook(playbook, extra_vars={
        'src_url': source.url, 'dst_url': target.url, 'api_key': api_key, 'dst_token': target.token(),
        'export_password': 'export-pw-123', 'out': str(out)})
    assert res.rc == 0, res.stdout + res.stderr

    first = res.task('encrypted export')
    assert first['changed'] is True and first['encrypted'] is True and first['count'] == len(SAMPLE)
    assert res.task('encrypted export again')['changed'] is False
    assert res.task('a module outside the group runs untouched')['stat']['isdir'] is True
    imported = res.task('import the encrypted export')
    assert imported['created'] == len(SAMPLE) and imported['failures'] == []
    assert res.task('export with a token from NEXUS_TOKEN')['count'] == len(SAMPLE)
    assert read_all(target) == as_map(SAMPLE)

    # The encrypted file holds no plaintext, and no other file was left beside it.
    blob = (out / 'enc.bin').read_bytes()
    assert sorted(p.name for p in out.iterdir()) == ['enc.bin', 'plain.json']
    for secret in SAMPLE:
        if len(secret['value']) >= 8:  # shorter ones may occur in random bytes by chance
            assert secret['value'].encode() not in blob and secret['path'].encode() not in blob
    assert b'"secrets"' not in blob
    document = json.loads(decrypt_bytes('export-pw-123', blob))
    assert as_map(document['secrets']) == as_map(SAMPLE)
    assert (out / 'enc.bin').stat().st_mode & 0o777 == 0o600
    for leak in ('export-pw-123', api_key, SAMPLE[0]['value']):
        assert leak not in res.stdout and leak not in res.stderr
