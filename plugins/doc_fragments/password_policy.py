# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    """The password policy of modules that encrypt files with a password."""

    DOCUMENTATION = r'''
options:
  password_policy:
    description:
      - What to do when the encryption password breaks the nexusctl guide's rule (at least 16
        characters, mixing upper case, lower case, digits and symbols).
      - V(warn) adds a warning that names what is missing (never the password), V(fail) fails before
        anything is written, V(ignore) checks nothing.
    type: str
    choices: [warn, fail, ignore]
    default: warn
'''
