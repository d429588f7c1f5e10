#!/usr/bin/env bash
# Run `ansible-test sanity` on this work tree, with no ignore file.
#
#   scripts/sanity.sh                      # every sanity test
#   scripts/sanity.sh --test pylint        # extra args go to ansible-test sanity
#   SANITY_DIR=/tmp/x scripts/sanity.sh    # where the copy goes (default: a folder in $TMPDIR or /tmp)
#
# ansible-test needs the collection at .../ansible_collections/nexus/secrets and runs from inside it,
# so we copy the files git would commit (tracked + untracked-not-ignored) into a fresh tree there.
# A real copy, not a symlink: ansible-test resolves paths and would escape a link.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV_BIN="${VENV_BIN:-$REPO/.venv/bin}"
# Outside the work tree: ansible-test lists files with git, which ignores everything under .cache.
SANITY_DIR="${SANITY_DIR:-${TMPDIR:-/tmp}/nexus-sanity-$(id -u)}"
DEST="$SANITY_DIR/ansible_collections/nexus/secrets"
PYVER="$("$VENV_BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
export PATH="$VENV_BIN:$PATH"

rm -rf "$DEST"
mkdir -p "$DEST"
# Files deleted in the work tree but still tracked are skipped (test -e).
(cd "$REPO" && git ls-files -z -co --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$DEST"

"$REPO/scripts/sanity_bootstrap.sh" "$VENV_BIN/python"

cd "$DEST"
# The per-test virtualenvs (~/.ansible/test/venv) are created once under a lock, so parallel runs
# (pytest-xdist, several developers) never build the same venv at the same time; later runs reuse them.
mkdir -p "$HOME/.ansible/test"
flock "$HOME/.ansible/test/.nexus-sanity.lock" \
    ansible-test sanity --local --python "$PYVER" --prime-venvs --color no >/dev/null
exec ansible-test sanity --local --python "$PYVER" --color no "$@"
