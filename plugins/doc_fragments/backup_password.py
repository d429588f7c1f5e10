# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The password of nexusctl-format encrypted backups."""

    DOCUMENTATION = r'''
options:
  backup_password:
    description:
      - The backup encryption password, as C(nexusctl backup create) asks for it. The file is
        C(salt || nonce || AES-256-GCM(tar.gz)) with the key derived by Argon2id from this
        password, so backups made here and by nexusctl are interchangeable.
      - If not set, the value of the E(NEXUS_BACKUP_PASSWORD) environment variable is used (read on
        the managed host when the task runs, so C(environment:) on the task works). An empty variable
        counts as unset.
      - Given as an empty string where a password is needed, the module fails and changes nothing.
      - This is not the keyring password (E(NEXUS_KEY_PASSWORD)) nor an API login password.
    type: str
requirements:
  - cryptography >= 44, or an older cryptography together with argon2-cffi (for Argon2id)
  - isal (optional) makes gzip several times faster; the files stay ordinary gzip
'''
