#!/usr/bin/env bash
# Provide ansible-test's pip bootstrap script without its download.
#
# ansible-test builds each sanity test's virtualenv with `python -m venv --without-pip` and then runs
# a get-pip.py that it downloads from a CI file host (not a package registry, unreachable here) and
# caches as ~/.ansible/test/cache/get_pip_<version>.py. ansible-test's own error message says the
# file may be placed there by hand; we place an equivalent: it bootstraps the interpreter's bundled
# pip (ensurepip) and lets that pip install the pinned pip from PyPI. Nothing is written if a cached
# script is already there.
#   usage: scripts/sanity_bootstrap.sh PYTHON   (the Python that has ansible-core installed)
set -euo pipefail
PYTHON="${1:?usage: $0 PYTHON}"

"$PYTHON" - <<'PY'
import os
import sys
import types

from ansible_test._internal.python_requirements import get_venv_packages

version = '%d.%d' % sys.version_info[:2]
pip_version = get_venv_packages(types.SimpleNamespace(version=version))['pip']
path = os.path.expanduser('~/.ansible/test/cache/get_pip_%s.py' % pip_version.replace('.', '_'))
if not os.path.exists(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.nexus-tmp-%d' % os.getpid()
    with open(tmp, 'w') as fh:
        fh.write('''"""get-pip.py stand-in written by nexus.secrets scripts/sanity_bootstrap.sh."""
import ensurepip
import subprocess
import os
import sys

# get-pip.py options that plain `pip install` does not know.
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
# ensurepip points PIP_CONFIG_FILE at /dev/null in os.environ; the real install needs the pip config.
env = dict(os.environ)
ensurepip.bootstrap()
sys.exit(subprocess.call([sys.executable, '-m', 'pip', 'install'] + args, env=env))
''')
    os.replace(tmp, path)
PY
