# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of nexus.secrets.nexus_backup_upload: fills unset credentials from the controller's environment."""

from __future__ import annotations

from ansible_collections.nexus.secrets.plugins.plugin_utils._credentials import CredentialsAction


class ActionModule(CredentialsAction):
    CREDENTIAL_OPTIONS = {'backup_password': 'NEXUS_BACKUP_PASSWORD'}
    CONNECTION = False
