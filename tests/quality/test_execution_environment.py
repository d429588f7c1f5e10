"""Gate: ansible-builder sees exactly the Python packages the collection's modules need."""

from __future__ import annotations

import re

import yaml

from tests.quality.collection_tree import REPO, copy_collection, output_of, run_tool

EXPECTED_PYTHON = {'cryptography', 'argon2-cffi', 'requests', 'boto3'}


def requirement_name(line):
    """'argon2-cffi>=21.3  # from collection x' -> 'argon2-cffi' (PEP 503-normalised)."""
    name = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', line).group(1)
    return re.sub(r'[-_.]+', '-', name).lower()


def test_ee_definition_is_a_valid_version_3_schema():
    from ansible_builder.ee_schema import validate_schema

    definition = yaml.safe_load((REPO / 'meta' / 'execution-environment.yml').read_text())
    assert definition['version'] == 3
    validate_schema(definition)  # raises DefinitionError when invalid
    for kind in ('python', 'system'):
        assert (REPO / definition['dependencies'][kind]).is_file(), kind


def test_ee_python_requirements_match_the_runtime_requirements():
    """meta/ee-requirements.txt and requirements/runtime.txt (minus ansible-core) must not drift apart."""
    def names(path):
        return {requirement_name(line) for line in path.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith(('#', '-'))}

    runtime = names(REPO / 'requirements' / 'runtime.txt') - {'ansible-core'}
    assert names(REPO / 'meta' / 'ee-requirements.txt') == runtime == EXPECTED_PYTHON


def test_ansible_builder_introspect_lists_exactly_our_requirements(tmp_path):
    copy_collection(tmp_path)
    proc = run_tool(['ansible-builder', 'introspect', '--sanitize', tmp_path])
    assert proc.returncode == 0, output_of(proc)
    data = yaml.safe_load(proc.stdout[proc.stdout.index('---'):])
    python = data['python']
    assert all(line.endswith('# from collection nexus.secrets') for line in python), python
    assert {requirement_name(line) for line in python} == EXPECTED_PYTHON
    assert len(python) == len(EXPECTED_PYTHON), 'duplicate requirement lines: %r' % python
    system = data['system']
    assert system and all(line.endswith('# from collection nexus.secrets') for line in system), system
    # Only build-time packages: the final image needs no system package of ours.
    assert all('[compile' in line for line in system), system
