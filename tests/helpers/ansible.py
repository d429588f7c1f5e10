"""Run real ``ansible-playbook`` from tests, against this work tree's collection.

Secrets given to ``run_module`` travel in a 0600 vars file, never in argv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / '.cache' / 'collections'
VENV_BIN = Path(sys.executable).parent


def ansible_env(extra=None):
    """Environment for an ansible-playbook child: our collection, our Python, quiet output."""
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': str(COLLECTIONS),
        # The Python that runs the modules (the managed host's); the version matrix sets another.
        'ANSIBLE_PYTHON_INTERPRETER': os.environ.get('NEXUS_TEST_HOST_PYTHON') or sys.executable,
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_RETRY_FILES_ENABLED': '0',
        'ANSIBLE_HOST_KEY_CHECKING': '0',
        'ANSIBLE_DEPRECATION_WARNINGS': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_ROLES_PATH': str(REPO / 'roles'),
        'ANSIBLE_CALLBACK_PLUGINS': str(Path(__file__).parent / 'callback_plugins'),
        'PATH': str(VENV_BIN) + os.pathsep + env.get('PATH', ''),
    })
    env.update(extra or {})
    return env


@dataclass
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    data: dict = field(default_factory=dict)  # parsed json callback output, if used

    def task_results(self, name, host='localhost'):
        """All results of tasks called ``name`` for ``host``, in run order."""
        found = []
        for play in self.data.get('plays', []):
            for task in play.get('tasks', []):
                if task['task']['name'] == name and host in task['hosts']:
                    found.append(task['hosts'][host])
        return found

    def task(self, name, host='localhost'):
        results = self.task_results(name, host)
        assert results, 'no task named %r in the run; stdout:\n%s\nstderr:\n%s' % (name, self.stdout, self.stderr)
        return results[-1]

    @property
    def stats(self):
        return self.data.get('stats', {})


def run_playbook(playbook, *, inventory='localhost,', extra_vars=None, check=False, diff=False,
                 json_output=True, verbosity=0, env=None, cwd=None, limit=None, timeout=900):
    """Run ``ansible-playbook``; ``extra_vars`` go through a private 0600 file."""
    cmd = [str(VENV_BIN / 'ansible-playbook'), '-i', inventory, str(playbook)]
    if inventory == 'localhost,':
        cmd[3:3] = ['-c', 'local']
    if limit:
        cmd += ['--limit', limit]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    if verbosity:
        cmd.append('-' + 'v' * verbosity)
    extra_env = {'ANSIBLE_STDOUT_CALLBACK': 'test_json'} if json_output else {}
    extra_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix='nexus-test-vars-') as tmp:
        if extra_vars:
            vars_file = Path(tmp) / 'vars.json'
            fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, 'w') as fh:
                json.dump(extra_vars, fh)
            cmd += ['-e', '@' + str(vars_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(extra_env),
                              cwd=cwd or REPO, timeout=timeout, check=False)
    data = {}
    if json_output and proc.stdout.strip():
        try:
            data = json.loads(proc.stdout[proc.stdout.index('{'):])
        except ValueError:
            data = {}
    return PlaybookResult(proc.returncode, proc.stdout, proc.stderr, data)


def run_module(module, args, *, check=False, diff=False, env=None, verbosity=0, environment=None):
    """Run one module (FQCN) on localhost through a generated playbook; return its result dict.

    ``environment`` is the task-level environment (e.g. NEXUS_* fallbacks), kept out of argv.
    """
    task = {'name': 'under test', module: '{{ module_args }}', 'register': 'out'}
    if environment:
        task['environment'] = '{{ task_environment }}'
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [task]}]
    with tempfile.TemporaryDirectory(prefix='nexus-test-play-') as tmp:
        playbook = Path(tmp) / 'play.yml'
        playbook.write_text(yaml.safe_dump(play))
        extra = {'module_args': args}
        if environment:
            extra['task_environment'] = environment
        res = run_playbook(playbook, extra_vars=extra, check=check, diff=diff, env=env,
                           verbosity=verbosity)
    results = res.task_results('under test')
    assert results, 'module did not run: rc=%s\nstdout:\n%s\nstderr:\n%s' % (res.rc, res.stdout, res.stderr)
    out = results[-1]
    out['_run'] = res
    return out
