"""Look for secrets where they must never be: output, logs, results, process arguments, files.

``ArgvSampler`` polls every process's command line (psutil) in a thread while a run goes;
``scan_files`` walks directories for files that hold a secret and can be read by anyone but the
owner, and for the collection's own files whose mode is not private. Secrets are matched as raw
UTF-8 bytes, and as the JSON/percent-encoded forms they would take in a log line or a URL.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from urllib.parse import quote

import psutil

MAX_READ = 32 * 1024 * 1024


def forms(secret):
    """The spellings of ``secret`` that would show up in text: raw, JSON-escaped, percent-encoded."""
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe='')}


class Canaries(object):
    """Named secrets; ``find(text)`` names the ones present in a str or bytes."""

    def __init__(self, **secrets):
        self.secrets = dict(secrets)

    def add(self, name, value):
        self.secrets[name] = value

    def find(self, text):
        if isinstance(text, str):
            text = text.encode('utf-8', 'surrogateescape')
        return sorted(name for name, value in self.secrets.items()
                      if any(form.encode('utf-8') in text for form in forms(value)))


class ArgvSampler(object):
    """Context manager: samples every process's argv until exit; ``hits`` lists leaks found."""

    def __init__(self, canaries, interval=0.05):
        self.canaries = canaries
        self.interval = interval
        self.hits = []
        self.samples = 0
        self.processes_seen = set()
        self.saw_ansible = False  # proof that the sampler ran while ansible-playbook did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        me = os.getpid()
        while not self._stop.is_set():
            for proc in psutil.process_iter(['pid', 'cmdline']):
                if proc.info['pid'] == me or not proc.info['cmdline']:
                    continue
                self.processes_seen.add(proc.info['pid'])
                line = ' '.join(proc.info['cmdline'])
                self.saw_ansible = self.saw_ansible or 'ansible-playbook' in line
                found = self.canaries.find(line)
                if found:
                    self.hits.append((found, proc.info['cmdline']))
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def walk_files(root):
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            yield os.path.join(dirpath, name)


def scan_files(roots, canaries):
    """``(problems, files_checked)``: files holding a secret that group/others can read."""
    problems, checked = [], 0
    for root in roots:
        if not os.path.isdir(str(root)):
            continue
        for path in walk_files(root):
            try:
                st = os.lstat(path)
                if not stat.S_ISREG(st.st_mode):
                    continue
                with open(path, 'rb') as fh:
                    found = canaries.find(fh.read(MAX_READ))
            except OSError:
                continue  # gone meanwhile (another run's temp file)
            checked += 1
            if found and st.st_mode & 0o077:
                problems.append('%s (mode %04o) holds %s' % (path, stat.S_IMODE(st.st_mode), ', '.join(found)))
    return problems, checked


def private_modes(paths):
    """Problems for files that should be 0600 (and dirs 0700) but are not."""
    problems = []
    for path in paths:
        mode = stat.S_IMODE(os.lstat(str(path)).st_mode)
        want = 0o700 if os.path.isdir(str(path)) else 0o600
        if mode != want:
            problems.append('%s has mode %04o, expected %04o' % (path, mode, want))
    return problems


def new_entries(directory, before):
    """Top-level entries of ``directory`` that were not in ``before`` (a set of names)."""
    try:
        return [os.path.join(directory, n) for n in os.listdir(directory) if n not in before]
    except OSError:
        return []
