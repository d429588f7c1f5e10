"""nexus_import remove_src: the export file is overwritten and unlinked only after a complete import."""

from __future__ import annotations

import json
import os

from tests.integration.export_import.conftest import IMPORT, SAMPLE, conn, read_all


def export_file(tmp_path, secrets, name='export.json'):
    path = tmp_path / name
    path.write_text(json.dumps({'exported_at': '2026-12-02T00:00:00Z', 'secrets': secrets}))
    path.chmod(0o600)
    return path


def test_complete_import_removes_the_file_and_check_mode_only_predicts(ansible_module, nexus_server, tmp_path):
    src = export_file(tmp_path, SAMPLE)
    before = src.read_bytes()
    preview = ansible_module(IMPORT, conn(nexus_server, src=str(src), remove_src=True), check=True)
    assert preview['src_removed'] and preview['changed'] and src.read_bytes() == before

    # Watch the blocks: the same inode, opened before the import, must hold zeros afterwards.
    with open(str(src), 'rb') as held:
        out = ansible_module(IMPORT, conn(nexus_server, src=str(src), remove_src=True))
        assert out.get('failed') is not True, out.get('msg')
        assert out['src_removed'] and out['created'] == len(SAMPLE)
        assert not src.exists()
        held.seek(0)
        assert held.read() == b'\0' * len(before)
    assert set(read_all(nexus_server)) == {s['path'] for s in SAMPLE}

    # A second, identical import with remove_src also removes its (unchanged) file.
    again = export_file(tmp_path, SAMPLE, 'again.json')
    out = ansible_module(IMPORT, conn(nexus_server, src=str(again), remove_src=True))
    assert out['unchanged'] + out['skipped_existing'] == len(SAMPLE) and out['src_removed'] and not again.exists()


def test_file_is_kept_when_a_prefix_leaves_secrets_out_or_an_import_fails(ansible_module, nexus_server, tmp_path):
    src = export_file(tmp_path, SAMPLE)
    out = ansible_module(IMPORT, conn(nexus_server, src=str(src), remove_src=True, prefix='app/'))
    assert out.get('failed') is not True and out['src_removed'] is False and src.exists()
    assert any('prefix left some of its secrets out' in w for w in out.get('warnings', []))

    # An import that fails (here: the server is gone) keeps its file untouched.
    bad = export_file(tmp_path, [{'path': 'app/new/one', 'value': 'x'}], 'bad.json')
    nexus_server.stop()
    down = ansible_module(IMPORT, conn(nexus_server, src=str(bad), remove_src=True, retries=0))
    assert down['failed'] and bad.exists() and bad.read_text().startswith('{')


def test_a_symlinked_src_is_never_followed_for_removal(ansible_module, nexus_server, tmp_path):
    real = export_file(tmp_path, SAMPLE[:2], 'real.json')
    link = tmp_path / 'link.json'
    os.symlink(str(real), str(link))
    out = ansible_module(IMPORT, conn(nexus_server, src=str(link), remove_src=True))
    # Either the import refuses a link as src, or the removal does: the target stays intact.
    assert real.read_text().startswith('{') and link.is_symlink()
    assert out['failed'] or out['src_removed'] is False
