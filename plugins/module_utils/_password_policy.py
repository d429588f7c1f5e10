# -*- coding: utf-8 -*-
# Copyright: nexus.secrets contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nexusctl guide's rule for backup and export passwords: at least 16 characters, mixing upper
case, lower case, digits and symbols. Findings name what is missing, never the password.
Private to this collection.
"""

from __future__ import annotations

MIN_LENGTH = 16
POLICIES = ('warn', 'fail', 'ignore')
RULE = 'at least %d characters mixing upper case, lower case, digits and symbols' % MIN_LENGTH

_CLASSES = (
    ('upper-case letter', lambda c: c.isupper()),
    ('lower-case letter', lambda c: c.islower()),
    ('digit', lambda c: c.isdigit()),
    ('symbol', lambda c: not c.isalnum()),
)


def weaknesses(password):
    """What ``password`` lacks under the rule, as short phrases (empty when it complies)."""
    found = []
    if len(password) < MIN_LENGTH:
        found.append('shorter than %d characters' % MIN_LENGTH)
    for name, test in _CLASSES:
        if not any(test(c) for c in password):
            found.append('no ' + name)
    return found


def apply_policy(module, option, password, policy):
    """Warn about, or fail on, a ``password`` of ``option`` that breaks the rule; returns the findings."""
    if not password or policy == 'ignore':
        return []
    found = weaknesses(password)
    if found:
        text = '%s does not meet the password policy (%s): %s' % (option, RULE, ', '.join(found))
        if policy == 'fail':
            module.fail_json(msg=text + '; nothing was written (password_policy=fail)', password_findings=found)
        module.warn(text)
    return found
