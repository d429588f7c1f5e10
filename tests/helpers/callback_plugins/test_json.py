"""Stdout callback for tests: the whole run as one JSON document (ansible.posix.json's shape).

ansible-core ships no JSON stdout callback, and ansible.posix is not installable from PyPI alone.
"""

from __future__ import annotations

import json

from ansible.executor.task_result import TaskResult
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
    name: test_json
    type: stdout
    short_description: whole run as JSON, for the test-suite
    description: [Collects every task result and prints one JSON document at the end.]
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'test_json'

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def _task_entry(self, task):
        tasks = self.plays[-1]['tasks']
        if not tasks or tasks[-1]['task']['id'] != task._uuid:
            tasks.append({'task': {'name': task.get_name(), 'id': task._uuid}, 'hosts': {}})
        return tasks[-1]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_entry(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task_entry(task)

    def _record(self, result: TaskResult, **flags):
        entry = self._task_entry(result._task)
        data = dict(self._convert_result(result))
        data.update(flags)
        entry['hosts'][result._host.get_name()] = data

    @staticmethod
    def _convert_result(result):
        res = result._result
        # ansible-core 2.19 wraps results; plain dicts round-trip through json below.
        return json.loads(json.dumps(res, default=str))

    def v2_runner_on_ok(self, result, **kwargs):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_playbook_on_stats(self, stats):
        summary = {h: stats.summarize(h) for h in sorted(stats.processed.keys())}
        self._display.display(json.dumps({'plays': self.plays, 'stats': summary}, indent=1, default=str))
