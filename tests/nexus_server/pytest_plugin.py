"""pytest fixtures for the reference NEXUS server.

* ``nexus_server_factory(**kwargs)`` builds and starts a ``NexusServer`` (kwargs as its constructor;
  ``workdir`` optional, a fresh temp dir otherwise; ``start=False`` to get it unstarted). Every server it
  made is stopped at teardown.
* ``nexus_server``: one started sqlite server in ``tmp_path / 'nexus'``.
"""

from __future__ import annotations

import itertools

import pytest

from tests.nexus_server.harness import ApiClient, NexusServer

__all__ = ['ApiClient', 'NexusServer', 'nexus_server', 'nexus_server_factory']  # ApiClient is re-exported


@pytest.fixture
def nexus_server_factory(tmp_path_factory):
    made = []
    counter = itertools.count()

    def factory(workdir=None, start=True, **kwargs):
        if workdir is None:
            workdir = tmp_path_factory.mktemp('nexus-%d-' % next(counter))
        server = NexusServer(workdir, **kwargs)
        made.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in made:
        try:
            server.stop()
        except Exception:  # pragma: no cover - teardown must reach every server
            server.kill()


@pytest.fixture
def nexus_server(nexus_server_factory, tmp_path):
    return nexus_server_factory(workdir=tmp_path / 'nexus')
