"""The collection as git would commit it, and the Ansible tools that check it (quality gates)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
NAMESPACE, NAME = 'nexus', 'secrets'
FQCN_PREFIX = '%s.%s.' % (NAMESPACE, NAME)


def committed_files():
    """Paths (relative to the repo) git would commit: tracked plus untracked-not-ignored, still on disk."""
    out = subprocess.run(['git', 'ls-files', '-z', '-co', '--exclude-standard'], cwd=REPO,
                         capture_output=True, check=True).stdout.decode('utf-8')
    return sorted(rel for rel in set(out.split('\0'))
                  if rel and (os.path.islink(REPO / rel) or (REPO / rel).is_file()))


def copy_collection(root):
    """Copy the committed files to ``root/ansible_collections/nexus/secrets`` (a real copy) and return it."""
    dest = Path(root) / 'ansible_collections' / NAMESPACE / NAME
    for rel in committed_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target, follow_symlinks=False)
    return dest


def module_names(root=REPO):
    """Every module the collection ships: ``plugins/modules/*.py`` except private helpers."""
    return sorted(p.stem for p in (Path(root) / 'plugins' / 'modules').glob('*.py')
                  if not p.name.startswith('_'))


def role_names(root=REPO):
    """Every role the collection ships: a directory under ``roles/`` with ``tasks/main.yml``."""
    return sorted(p.parent.parent.name for p in (Path(root) / 'roles').glob('*/tasks/main.yml'))


def tool_env(extra=None):
    """Environment for the venv's Ansible tools: our collection via .cache/collections, no colour."""
    env = dict(os.environ)
    env.update({
        'PATH': str(VENV_BIN) + os.pathsep + env.get('PATH', ''),
        'ANSIBLE_COLLECTIONS_PATH': str(REPO / '.cache' / 'collections'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'NO_COLOR': '1',
        'PY_COLORS': '0',
    })
    env.update(extra or {})
    return env


def run_tool(cmd, cwd=REPO, env=None, timeout=900):
    """Run a venv tool (``cmd[0]`` is looked up in the venv); return the CompletedProcess."""
    cmd = [str(VENV_BIN / cmd[0])] + [str(c) for c in cmd[1:]]
    return subprocess.run(cmd, cwd=cwd, env=tool_env(env), capture_output=True, text=True,
                          timeout=timeout, check=False)


def output_of(proc, limit=20000):
    """Both streams of a finished tool, trimmed for an assertion message."""
    text = 'rc=%s\n--- stdout\n%s\n--- stderr\n%s' % (proc.returncode, proc.stdout, proc.stderr)
    return text if len(text) <= limit else '...' + text[-limit:]
