"""nexus_backup of a running server → nexus_backup_info → nexus_restore → the server serves the same."""

from __future__ import annotations

import pytest

from tests.integration.restore.test_restore_module import served_secrets, stopped_health_url

BACKUP_PASSWORD = 'round-trip-backup-password'
KEY_PASSWORD = 'round-trip-key-password'


@pytest.mark.slow
def test_hot_backup_restores_onto_the_same_and_a_fresh_host(ansible_module, nexus_server_factory, tmp_path):
    server = nexus_server_factory(workdir=tmp_path / 'prod', key_password=KEY_PASSWORD)
    client = server.client()
    for i in range(20):
        assert client.create('rt/secret-%02d' % i, 'value-%02d' % i, {'n': str(i)}).status_code == 201
    assert client.delete('rt/secret-19').status_code == 204
    total, expected = served_secrets(server)
    assert total == 19

    made = ansible_module('nexus.secrets.nexus_backup', {
        'data_dir': str(server.workdir), 'dest': str(tmp_path / 'backups'), 'backup_password': BACKUP_PASSWORD})
    assert made.get('failed') is not True, made.get('msg')
    info = ansible_module('nexus.secrets.nexus_backup_info', {
        'path': str(tmp_path / 'backups'), 'backup_password': BACKUP_PASSWORD, 'key_password': KEY_PASSWORD})
    assert info['latest']['path'] == made['path']
    assert info['latest']['valid'] and info['latest']['secrets'] == 19 and info['latest']['sidecar'] == 'ok'

    # Damage after the backup, then restore onto the same data dir (server stopped).
    assert client.delete('rt/secret-00').status_code == 204
    assert client.put('rt/secret-01', 'changed after the backup').status_code == 200
    server.stop()
    args = {'src': made['path'], 'backup_password': BACKUP_PASSWORD, 'key_password': KEY_PASSWORD,
            'data_dir': str(server.workdir), 'health_url': stopped_health_url()}
    out = ansible_module('nexus.secrets.nexus_restore', args)
    assert out.get('failed') is not True, out.get('msg')
    assert out['changed'] and out['secrets'] == 19 and out['pre_restore_path']
    server.start()
    assert served_secrets(server) == (19, expected)
    server.stop()

    # Disaster recovery onto a fresh host.
    fresh = dict(args, data_dir=str(tmp_path / 'dr' / 'nexus'))
    (tmp_path / 'dr').mkdir()
    assert ansible_module('nexus.secrets.nexus_restore', fresh)['changed']
    recovered = nexus_server_factory(workdir=tmp_path / 'dr' / 'nexus', key_password=KEY_PASSWORD)
    assert served_secrets(recovered) == (19, expected)
