"""One empty-environment rule for every password option of every module, through _env's one helper.

Each module's real argument spec is captured (its main() builds AnsibleModule, which is stopped right
there); every option holding a password must fall back through ``nonempty_env_fallback`` to its
documented variable, and that fallback must treat an empty variable as unset. The local-file modules
must not load the REST layer at all.
"""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest
from ansible.module_utils.basic import AnsibleFallbackNotFound

from ansible_collections.nexus.secrets.plugins.module_utils import _connection, _env

MODULES_DIR = pathlib.Path(__file__).resolve().parents[3] / 'plugins' / 'modules'
MODULE_NAMES = sorted(p.stem for p in MODULES_DIR.glob('nexus_*.py'))
# The modules that work on local files (and object storage): never the REST layer.
LOCAL_FILE_MODULES = ('nexus_backup', 'nexus_backup_download', 'nexus_backup_info', 'nexus_backup_metrics',
                      'nexus_backup_prune', 'nexus_backup_rekey', 'nexus_backup_upload', 'nexus_datadir_holders',
                      'nexus_keyring_rotate', 'nexus_restore')
REST_LAYER = ('_connection', '_api', '_secrets_io', '_import', '_export', '_info', '_audit', '_parallel')
UTILS = 'ansible_collections.nexus.secrets.plugins.module_utils.'


class Captured(Exception):
    def __init__(self, spec):
        Exception.__init__(self)
        self.spec = spec


def argument_spec_of(name, monkeypatch):
    module = importlib.import_module('ansible_collections.nexus.secrets.plugins.modules.' + name)

    def capture(argument_spec, **dummy):
        raise Captured(argument_spec)
    monkeypatch.setattr(module, 'AnsibleModule', capture)
    with pytest.raises(Captured) as caught:
        module.main()
    return caught.value.spec


def password_options(spec):
    return dict((name, opts) for name, opts in spec.items()
                if name.endswith('password') and name not in ('password', 'password_policy'))


@pytest.mark.parametrize('name', MODULE_NAMES)
def test_every_password_option_falls_back_through_the_one_helper(name, monkeypatch):
    spec = argument_spec_of(name, monkeypatch)
    for option, opts in password_options(spec).items():
        assert opts.get('no_log') is True, (name, option)
        if option == 'new_key_password':
            assert 'fallback' not in opts, (name, option)  # never taken from the environment
            continue
        func, variables = opts['fallback']
        assert func is _env.nonempty_env_fallback, (name, option)
        assert variables == [_env.PASSWORD_VARIABLES[option]], (name, option)
    if 'password' in spec:  # the connection password: bound after validation, through _env too
        assert 'fallback' not in spec['password'], name


@pytest.mark.parametrize('variable', sorted(_env.PASSWORD_VARIABLES.values()))
def test_an_empty_variable_counts_as_unset(variable, monkeypatch):
    monkeypatch.setenv(variable, '')
    with pytest.raises(AnsibleFallbackNotFound):
        _env.nonempty_env_fallback(variable)
    monkeypatch.setenv(variable, 'x')
    assert _env.nonempty_env_fallback(variable) == 'x'


def test_connection_credentials_follow_the_same_rule():
    environ = {'NEXUS_USERNAME': 'admin', 'NEXUS_PASSWORD': '', 'NEXUS_TOKEN': '', 'NEXUS_API_KEY': 'k'}
    expected = dict(token=None, api_key='k', username=None, password=None)
    assert _connection.resolve_credentials({}, environ) == ('api_key', expected)
    environ['NEXUS_API_KEY'] = ''
    with pytest.raises(_connection.CredentialError, match='password is not'):
        _connection.resolve_credentials({}, environ)


def test_an_explicit_empty_password_is_named():
    assert _env.empty_password_msg({'backup_password': 'x', 'export_password': None}, ['backup_password',
                                                                                       'export_password']) is None
    msg = _env.empty_password_msg({'backup_password': '', 'new_backup_password': ''},
                                  ['backup_password', 'new_backup_password'])
    assert msg == ('backup_password must not be empty (leave it unset to read NEXUS_BACKUP_PASSWORD); '
                   'new_backup_password must not be empty (leave it unset to read NEXUS_NEW_BACKUP_PASSWORD)')


def imported_utils(path, seen=None):
    """The collection's module_utils a file imports, directly or through other module_utils."""
    seen = set() if seen is None else seen
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(UTILS[:-1]):
            names = [node.module[len(UTILS):]] if node.module != UTILS[:-1] else [a.name for a in node.names]
        for name in names:
            if name and name not in seen:
                seen.add(name)
                imported_utils(MODULES_DIR.parent / 'module_utils' / (name + '.py'), seen)
    return seen


@pytest.mark.parametrize('name', LOCAL_FILE_MODULES)
def test_local_file_modules_do_not_load_the_rest_layer(name):
    loaded = imported_utils(MODULES_DIR / (name + '.py'))
    assert '_layout' in loaded or '_metrics' in loaded or '_s3' in loaded, loaded  # the walk found something
    assert not loaded & set(REST_LAYER), (name, sorted(loaded & set(REST_LAYER)))
