"""Gate: the AWX credential type in docs/awx is well formed and its injected environment really works.

AWX renders each ``injectors.env`` template with Jinja2, with only the inputs the credential has a
value for in the namespace: an empty input still injects its variable, as an empty string. The live
tests render the same way and run a module with nothing but that environment.
"""

from __future__ import annotations

import json
import re

import jinja2
import pytest
import yaml

from tests.helpers.ansible import run_module
from tests.quality.collection_tree import REPO, module_names

CREDENTIAL_TYPE = REPO / 'docs' / 'awx' / 'credential_type.yml'
# The env fallbacks the modules and roles honour; the credential type must inject each of them.
EXPECTED_ENV = {'NEXUS_URL', 'NEXUS_USERNAME', 'NEXUS_PASSWORD', 'NEXUS_API_KEY', 'NEXUS_TOKEN',
                'NEXUS_BACKUP_PASSWORD', 'NEXUS_KEY_PASSWORD', 'NEXUS_EXPORT_PASSWORD',
                'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_ENDPOINT_URL'}
SECRET_WORDS = ('password', 'token', 'key', 'secret')
FIELD_KEYS = {'id', 'label', 'type', 'help_text', 'secret', 'multiline', 'default', 'choices', 'format',
              'ask_at_runtime'}


def credential_type():
    return yaml.safe_load(CREDENTIAL_TYPE.read_text())


def referenced_inputs(template):
    return set(re.findall(r'\{\{\s*([A-Za-z_][A-Za-z0-9_]*)', template))


def awx_render_env(inputs):
    """The environment AWX injects for a credential whose non-empty inputs are ``inputs``."""
    namespace = {k: v for k, v in inputs.items() if v}
    return {name: jinja2.Template(tmpl).render(**namespace)
            for name, tmpl in credential_type()['injectors']['env'].items()}


def test_credential_type_shape():
    ctype = credential_type()
    assert set(ctype) == {'name', 'description', 'kind', 'inputs', 'injectors'}
    assert ctype['kind'] == 'cloud'
    fields = ctype['inputs']['fields']
    ids = [f['id'] for f in fields]
    assert len(ids) == len(set(ids)), 'duplicate input ids'
    assert len({f['label'] for f in fields}) == len(fields), 'duplicate labels'
    for field in fields:
        assert set(field) <= FIELD_KEYS, field
        assert field.get('type', 'string') in ('string', 'boolean'), field
        if any(word in field['id'] for word in SECRET_WORDS) and field['id'] != 'nexus_username':
            assert field.get('secret') is True, '%s must be secret: true' % field['id']
    assert set(ctype['inputs']['required']) <= set(ids)
    assert set(ctype['injectors']) == {'env'}
    env = ctype['injectors']['env']
    assert set(env) == EXPECTED_ENV
    used = set()
    for name, template in env.items():
        refs = referenced_inputs(template)
        assert refs and refs <= set(ids), '%s references undeclared inputs %s' % (name, refs - set(ids))
        used |= refs
    assert used == set(ids), 'inputs never injected: %s' % (set(ids) - used)


def test_every_injected_variable_is_honoured_by_the_collection():
    """Each injected name is read somewhere in plugins/ or roles/ (no dead or misspelt variables)."""
    code = '\n'.join(p.read_text() for folder in ('plugins', 'roles')
                     for p in (REPO / folder).rglob('*') if p.suffix in ('.py', '.yml'))
    missing = sorted(name for name in EXPECTED_ENV if not re.search(r'\b%s\b' % name, code))
    assert not missing, 'injected but never read: %s' % missing


def test_render_leaves_unset_inputs_empty():
    env = awx_render_env({'nexus_url': 'http://127.0.0.1:1', 'nexus_api_key': 'k'})
    assert env['NEXUS_URL'] == 'http://127.0.0.1:1' and env['NEXUS_API_KEY'] == 'k'
    assert env['NEXUS_TOKEN'] == '' and env['NEXUS_USERNAME'] == ''


def _export_with_awx_env(server, tmp_path, inputs):
    inputs = dict(inputs, nexus_url=server.url)
    dest = tmp_path / 'export.json'
    out = run_module('nexus.secrets.nexus_export', {'dest': str(dest)}, env=awx_render_env(inputs))
    assert not out.get('failed'), out.get('msg')
    exported = json.loads(dest.read_text())
    assert [s['path'] for s in exported['secrets']] == ['awx/probe']
    assert exported['secrets'][0]['value'] == 'probe-value'
    return out


@pytest.mark.parametrize('method', ['username_password', 'api_key', 'token'])
def test_a_module_runs_with_only_the_injected_environment(nexus_server, tmp_path, method):
    client = nexus_server.client()
    assert client.create('awx/probe', 'probe-value').status_code == 201
    if method == 'username_password':
        inputs = {'nexus_username': 'admin', 'nexus_password': 'admin'}
    elif method == 'api_key':
        inputs = {'nexus_api_key': client.create_api_key('awx').json()['key']}
    else:
        inputs = {'nexus_token': nexus_server.token()}
    _export_with_awx_env(nexus_server, tmp_path, inputs)


def test_recipes_name_only_real_playbooks_and_role_variables():
    """docs/awx and docs/ee.md stay true to the playbooks and the roles' argument specs."""
    documented = set()
    for spec in REPO.glob('roles/*/meta/argument_specs.yml'):
        for entry in yaml.safe_load(spec.read_text())['argument_specs'].values():
            documented |= set(entry.get('options', {}))
    for doc in (REPO / 'docs' / 'awx' / 'README.md', REPO / 'docs' / 'ee.md'):
        text = doc.read_text()
        variables = set(re.findall(r'\b(nexus_(?:backup|dr)_[a-z_]+)\b', text)) - set(module_names())
        assert variables, doc
        assert not variables - documented, '%s names unknown role variables %s' % (doc.name, variables - documented)
        for playbook in re.findall(r'nexus\.secrets\.(backup|disaster_recovery|migrate|restore_drill)\b', text):
            assert (REPO / 'playbooks' / (playbook + '.yml')).is_file(), playbook
        for path in re.findall(r'`((?:playbooks|meta|docs)/[\w./-]+)`', text):
            assert (REPO / path).exists(), '%s mentions missing %s' % (doc.name, path)
