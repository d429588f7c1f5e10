"""Prometheus textfile metrics of backup runs: content after success, failure and busy; atomic writes."""

from __future__ import annotations

import os

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils import _fsutil, _metrics


def samples(text):
    return dict(line.split(' ') for line in text.splitlines() if not line.startswith('#'))


def test_success_then_failure_keeps_the_last_success(tmp_path):
    path, text = _metrics.write_metrics(str(tmp_path), 'ok', now=1000.5, duration=2.25, size=4096, secrets=12,
                                        verified=True)
    assert path == str(tmp_path / 'nexus_backup.prom')
    assert samples(text) == {
        'nexus_backup_last_run_timestamp_seconds': '1000.5', 'nexus_backup_last_run_success': '1',
        'nexus_backup_last_run_busy': '0', 'nexus_backup_duration_seconds': '2.25',
        'nexus_backup_last_success_timestamp_seconds': '1000.5', 'nexus_backup_size_bytes': '4096',
        'nexus_backup_secrets': '12', 'nexus_backup_verify_success': '1'}
    for name in samples(text):
        assert '# TYPE %s gauge' % name in text and '# HELP %s ' % name in text
    assert oct(os.stat(path).st_mode & 0o777) == '0o644'

    dummy, text = _metrics.write_metrics(str(tmp_path), 'failed', now=2000, duration=0.5, uploaded=False)
    assert samples(text) == {
        'nexus_backup_last_run_timestamp_seconds': '2000', 'nexus_backup_last_run_success': '0',
        'nexus_backup_last_run_busy': '0', 'nexus_backup_duration_seconds': '0.5',
        'nexus_backup_last_success_timestamp_seconds': '1000.5', 'nexus_backup_size_bytes': '4096',
        'nexus_backup_secrets': '12', 'nexus_backup_upload_success': '0'}
    assert (tmp_path / 'nexus_backup.prom').read_text() == text
    assert os.listdir(str(tmp_path)) == ['nexus_backup.prom']

    text = _metrics.render('busy', previous=_metrics.read_metrics(path), now=3000)
    assert samples(text)['nexus_backup_last_run_busy'] == '1' and samples(text)['nexus_backup_last_run_success'] == '0'
    assert samples(text)['nexus_backup_last_success_timestamp_seconds'] == '1000.5'


def test_a_failure_without_history_has_no_success_time(tmp_path):
    dummy, text = _metrics.write_metrics(str(tmp_path), 'failed', now=5)
    assert 'nexus_backup_last_success_timestamp_seconds' not in text and 'nexus_backup_size_bytes' not in text


def test_the_temporary_file_is_never_a_prom_file(tmp_path, monkeypatch):
    """A crash mid-write leaves the old file, and no file the collector would read."""
    _metrics.write_metrics(str(tmp_path), 'ok', now=1, size=1, secrets=1)
    old = (tmp_path / 'nexus_backup.prom').read_text()
    seen = []
    real_replace = os.replace

    def crash(src, dst):
        seen.append(os.path.basename(src))
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(os, 'replace', crash)
    with pytest.raises(OSError):
        _metrics.write_metrics(str(tmp_path), 'failed', now=2)
    monkeypatch.setattr(os, 'replace', real_replace)
    assert seen and not seen[0].endswith('.prom') and os.path.dirname(_fsutil.__file__)
    assert (tmp_path / 'nexus_backup.prom').read_text() == old and os.listdir(str(tmp_path)) == ['nexus_backup.prom']


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError):
        _metrics.render('maybe')
