"""The guide's password rule on encrypted exports: warned about or refused, never echoed."""

from __future__ import annotations

import pytest

from ansible_collections.nexus.secrets.plugins.module_utils._password_policy import weaknesses
from tests.integration.export_import.conftest import EXPORT, SAMPLE, conn, seed

WEAK = 'hunter2hunter'
STRONG = 'Correct-Horse-9-Battery!'


def policy_warnings(result):
    return [w for w in result.get('warnings', []) if 'does not meet the password policy' in w]


@pytest.mark.parametrize('password, expected', [
    ('Ab1!Ab1!Ab1!Ab1!', []),
    ('Ab1!Ab1!Ab1!Ab1', ['shorter than 16 characters']),
    ('abcdefghijklmnopqrst', ['no upper-case letter', 'no digit', 'no symbol']),
    ('ABCDEFGHIJKLMNOP1!', ['no lower-case letter']),
    ('Abcdefghijklmnop!', ['no digit']),
    ('Abcdefghijklmnop1', ['no symbol']),
    ('Pässwörd-mit-Ümlaut-1', []),
])
def test_rule(password, expected):
    assert weaknesses(password) == expected


def test_weak_password_warns_without_echoing_it(ansible_module, nexus_server, tmp_path):
    seed(nexus_server, SAMPLE[:2])
    dest = tmp_path / 'weak.json.enc'
    out = ansible_module(EXPORT, conn(nexus_server, dest=str(dest), export_password=WEAK))
    assert out.get('failed') is not True, out.get('msg')
    assert out['password_findings'] == ['shorter than 16 characters', 'no upper-case letter', 'no symbol']
    assert len(policy_warnings(out)) == 1
    run = out['_run']
    assert WEAK not in run.stdout + run.stderr and dest.is_file()

    strong = ansible_module(EXPORT, conn(nexus_server, dest=str(tmp_path / 'strong.json.enc'),
                                         export_password=STRONG))
    assert strong['password_findings'] == [] and not policy_warnings(strong)


def test_policy_fail_refuses_before_anything_is_written(ansible_module, nexus_server, tmp_path):
    dest = tmp_path / 'refused.json.enc'
    out = ansible_module(EXPORT, conn(nexus_server, dest=str(dest), export_password=WEAK, password_policy='fail'))
    assert out['failed'] and 'nothing was written (password_policy=fail)' in out['msg']
    assert WEAK not in out['_run'].stdout + out['_run'].stderr
    assert not dest.exists()
    ignored = ansible_module(EXPORT, conn(nexus_server, dest=str(dest), export_password=WEAK,
                                          password_policy='ignore'))
    assert ignored['password_findings'] == [] and not policy_warnings(ignored) and dest.is_file()
