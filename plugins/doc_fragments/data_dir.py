# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """Where a NEXUS server keeps its data: the database and the keyring."""

    DOCUMENTATION = r'''
options:
  data_dir:
    description:
      - The NEXUS server's working directory (C(WorkingDirectory=) of C(nexus.service)). The server
        keeps its keyring in C(<data_dir>/data/keys) and, in the documented set-up, its database in
        C(<data_dir>/nexus.db).
    type: path
    default: /var/lib/nexus
  db_path:
    description:
      - The SQLite database (the server's C(-db) flag).
      - Default is C(<data_dir>/nexus.db).
    type: path
  keys_dir:
    description:
      - The keyring directory (C(master.key), C(signing.key), C(verify.key), C(age.key)).
      - Default is C(<data_dir>/data/keys).
    type: path
'''
