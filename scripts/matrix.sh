#!/usr/bin/env bash
# The supported version range, tested: for the oldest and the newest ansible-core that meta/runtime.yml
# and requirements/runtime.txt admit, run ansible-test sanity, the unit tests and one end-to-end
# backup -> backup_info -> restore through ansible-playbook, with the modules executed by the oldest or
# newest host Python the README names.
#
#   scripts/matrix.sh            # every cell
#   scripts/matrix.sh oldest     # one cell by name
#
# Each cell gets its own virtualenvs under .cache/matrix (created once, reused while the requirement
# files are unchanged). Pythons come from PATH or pyenv (~/.pyenv/versions/X.Y.*).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="$REPO/.cache/matrix"

# name  ansible-core  controller-python  host-python
CELLS=(
    "oldest 2.16 3.11 3.8"
    "newest 2.21 3.13 3.13"
)

find_python() {
    local want="$1" cand
    # pyenv's own builds first: its shims on PATH exist for every version but run only the selected one.
    for cand in "$HOME"/.pyenv/versions/"$want".*/bin/python"$want" "$(command -v "python$want" || true)"; do
        if [ -x "$cand" ] && "$cand" -c 'import venv' >/dev/null 2>&1; then echo "$cand"; return 0; fi
    done
    echo "matrix: no Python $want on PATH or in pyenv" >&2
    return 1
}

# make_venv DIR PYTHON REQUIREMENT...: a venv whose stamp records exactly what was asked for.
make_venv() {
    local dir="$1" python="$2"; shift 2
    local want; want="$(printf '%s\n' "$python" "$@"; cat "$REPO"/requirements/matrix*.txt)"
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then return 0; fi
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" > "$dir/.stamp"
}

run_cell() {
    local name="$1" core="$2" ctl_ver="$3" host_ver="$4"
    local ctl_py host_py ctl host coll
    ctl_py="$(find_python "$ctl_ver")"
    host_py="$(find_python "$host_ver")"
    ctl="$CACHE/$name-controller"
    host="$CACHE/$name-host"
    echo "== matrix cell $name: ansible-core $core.* on Python $ctl_ver, modules on Python $host_ver"
    make_venv "$ctl" "$ctl_py" "ansible-core==$core.*" -r "$REPO/requirements/matrix.txt"
    make_venv "$host" "$host_py" -r "$REPO/requirements/matrix-host.txt"
    "$ctl/bin/python" -c 'import ansible.release, sys; print("ansible-core", ansible.release.__version__, "on Python", sys.version.split()[0])'

    # The collection is linked in place, as `make venv` does for the main suite.
    coll="$REPO/.cache/collections/ansible_collections/nexus/secrets"
    mkdir -p "$(dirname "$coll")"
    [ -e "$coll" ] || ln -sfn "$REPO" "$coll"

    echo "-- $name: ansible-test sanity"
    # Outside the work tree: older ansible-test asks git for the files and would find them all ignored.
    local sanity_dir; sanity_dir="$(mktemp -d)"
    VENV_BIN="$ctl/bin" SANITY_DIR="$sanity_dir" "$REPO/scripts/sanity.sh"
    rm -rf "$sanity_dir"

    echo "-- $name: unit tests and the end-to-end round trip"
    (cd "$REPO" && NEXUS_TEST_HOST_PYTHON="$host/bin/python" "$ctl/bin/python" -m pytest -p no:cacheprovider \
        -n 2 -q tests/unit tests/integration/restore/test_round_trip.py \
        tests/integration/export_import/test_roundtrip.py)
}

want="${1:-}"
ran=0
for cell in "${CELLS[@]}"; do
    # shellcheck disable=SC2086
    set -- $cell
    if [ -z "$want" ] || [ "$want" = "$1" ]; then run_cell "$@"; ran=1; fi
done
[ "$ran" = 1 ] || { echo "matrix: no cell named $want" >&2; exit 2; }
