"""A real unprivileged account standing in for the NEXUS service account, and what root must keep.

The modules run as root over a data directory the service account owns. These helpers build such a
directory where uid 65534 can reach it (pytest's tmp dirs are private to root), run commands as
that uid with ``setpriv``, and snapshot root-only files (bytes, mode, owner) to prove them untouched.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

NOBODY = 65534
SETPRIV = shutil.which('setpriv')


def require_root():
    if os.geteuid() != 0:
        pytest.skip('the attacks run as a real unprivileged uid (setpriv --reuid=65534): needs root to switch to it')
    if not SETPRIV:
        pytest.skip('setpriv (util-linux) is not installed: cannot run the attack as another uid')


def as_nobody(args, **kwargs):
    """``subprocess.run`` of ``args`` as uid/gid 65534 without supplementary groups."""
    cmd = [SETPRIV, '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups'] + [str(a) for a in args]
    kwargs.setdefault('capture_output', True)
    kwargs.setdefault('text', True)
    kwargs.setdefault('timeout', 60)
    return subprocess.run(cmd, check=kwargs.pop('check', True), **kwargs)


def popen_as_nobody(args):
    cmd = [SETPRIV, '--reuid=%d' % NOBODY, '--regid=%d' % NOBODY, '--clear-groups'] + [str(a) for a in args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def nobody_python(code, *args, **kwargs):
    return as_nobody([sys.executable, '-c', code] + list(args), **kwargs)


def chown_tree(path, uid=NOBODY, gid=NOBODY):
    for root, dirs, files in os.walk(str(path)):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
    os.lchown(str(path), uid, gid)


def snapshot(root):
    """``{relative path: (kind, mode, uid, gid, bytes or link target)}`` of a tree, links never followed."""
    root = str(root)
    found = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [''] + dirs + files if dirpath == root else dirs + files:
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as fh:
                    body = fh.read()
                kind = 'file'
            elif stat.S_ISLNK(st.st_mode):
                kind, body = 'link', os.readlink(path)
            else:
                kind, body = 'dir' if stat.S_ISDIR(st.st_mode) else 'other', None
            found[os.path.relpath(path, root)] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, body)
    return found


class Arena(object):
    """``base`` (root, 0755) holding ``victim`` (root-only) and room for the account's data dir."""

    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix='nexus-attack-'))
        os.chmod(str(self.base), 0o755)
        self.victim = self.base / 'victim'
        self.victim.mkdir(mode=0o700)
        os.chmod(str(self.victim), 0o700)
        secret = self.victim / 'shadow'
        secret.write_bytes(b'root:$6$only-root-may-read-this$:19000:0:99999:7:::\n')
        os.chmod(str(secret), 0o600)
        keys = self.victim / 'keys'
        keys.mkdir(mode=0o700)
        for name in ('master.key', 'signing.key', 'verify.key', 'age.key'):
            (keys / name).write_bytes(b'root-only ' + name.encode())
            os.chmod(str(keys / name), 0o600)

    def victim_state(self):
        return snapshot(self.victim)

    def cleanup(self):
        shutil.rmtree(str(self.base), ignore_errors=True)
