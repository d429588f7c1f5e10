"""Fixtures shared by every test directory."""

import pytest

from tests.helpers.ansible import run_module, run_playbook

pytest_plugins = ['tests.nexus_server.pytest_plugin']


@pytest.fixture
def ansible_module():
    """Call ``ansible_module('nexus.secrets.x', {...}, check=..)`` to run one module for real."""
    return run_module


@pytest.fixture
def ansible_playbook():
    return run_playbook
