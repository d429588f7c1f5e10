"""nexus_export's file options are ansible-core's (symbolic modes, ids, check mode and diff predict,
reruns unchanged); an empty NEXUS_EXPORT_PASSWORD counts as unset, an empty export_password is an error."""

from __future__ import annotations

import os
import stat

from tests.integration.export_import.conftest import EXPORT, IMPORT, SAMPLE, conn, load_json, read_all, run, seed


def mode_of(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_export_file_options(nexus_server, tmp_path):
    seed(nexus_server, SAMPLE[:2])
    dest = tmp_path / 'export.json'
    ids = dict(owner=str(os.getuid()), group=str(os.getgid()))
    out = run(EXPORT, conn(nexus_server, dest=str(dest), mode='u=rw,g=r', **ids))
    assert out['changed'] and mode_of(dest) == 0o640, out
    assert (dest.stat().st_uid, dest.stat().st_gid) == (os.getuid(), os.getgid())
    again = run(EXPORT, conn(nexus_server, dest=str(dest), mode='0640', **ids))
    assert again['changed'] is False, again  # the same mode, spelt in octal: nothing to do
    # Only the mode differs: check mode says so, shows it in the diff, and leaves the file alone.
    planned = run(EXPORT, conn(nexus_server, dest=str(dest)), check=True, diff=True)
    assert planned['changed'] is True and mode_of(dest) == 0o640, planned
    assert '# mode: 0640' in planned['diff']['before'] and '# mode: 0600' in planned['diff']['after'], planned['diff']
    done = run(EXPORT, conn(nexus_server, dest=str(dest)))
    assert done['changed'] is True and mode_of(dest) == 0o600, done  # the default mode
    assert run(EXPORT, conn(nexus_server, dest=str(dest)))['changed'] is False
    refused = run(EXPORT, conn(nexus_server, dest=str(dest), mode='u=rwq'))
    assert refused.get('failed') and 'mode must be' in refused['msg'] and mode_of(dest) == 0o600, refused


def test_empty_export_password_variable_is_unset_and_an_empty_option_is_refused(nexus_server, tmp_path):
    seed(nexus_server, SAMPLE[:1])
    dest = tmp_path / 'export.json'
    out = run(EXPORT, conn(nexus_server, dest=str(dest)), environment={'NEXUS_EXPORT_PASSWORD': ''})
    assert out['changed'] and out['encrypted'] is False, out
    assert [s['path'] for s in load_json(dest)['secrets']] == [SAMPLE[0]['path']]  # plaintext JSON

    refused = run(EXPORT, conn(nexus_server, dest=str(tmp_path / 'other.json'), export_password=''),
                  environment={'NEXUS_EXPORT_PASSWORD': 'from-the-environment'})
    assert refused.get('failed') and refused['msg'].startswith('export_password must not be empty'), refused
    assert not (tmp_path / 'other.json').exists()

    before = read_all(nexus_server)
    refused = run(IMPORT, conn(nexus_server, src=str(dest), export_password=''))
    assert refused.get('failed') and refused['msg'].startswith('export_password must not be empty'), refused
    assert 'nothing was changed' in refused['msg'] and read_all(nexus_server) == before
    imported = run(IMPORT, conn(nexus_server, src=str(dest), overwrite=True),
                   environment={'NEXUS_EXPORT_PASSWORD': ''})
    assert not imported.get('failed') and imported['unchanged'] == 1, imported
