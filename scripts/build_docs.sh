#!/usr/bin/env bash
# Build the collection's documentation site (antsibull-docs RST + Sphinx HTML).
#
#   scripts/build_docs.sh [DEST]    # default docs/build (gitignored); the site is DEST/html/index.html
#
# Offline by default: intersphinx is switched off (no inventory downloads from docs.ansible.com or
# docs.python.org), so references INTO Ansible's own docs (ansible.builtin modules,
# common_return_values, ansible_configuration_settings, action_plugins for modules with an action
# plugin) stay unresolved; those warnings are
# tolerated. Every other Sphinx warning fails the build, including any broken reference to
# nexus.secrets itself. DOCS_ONLINE=1 keeps intersphinx and makes every warning fatal.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV_BIN="${VENV_BIN:-$REPO/.venv/bin}"
DEST="$(mkdir -p "${1:-$REPO/docs/build}" && cd "${1:-$REPO/docs/build}" && pwd)"
export PATH="$VENV_BIN:$PATH"
export ANSIBLE_COLLECTIONS_PATH="${ANSIBLE_COLLECTIONS_PATH:-$REPO/.cache/collections}"

rm -rf "$DEST/site" "$DEST/html" "$DEST/warnings.log"
mkdir -p "$DEST/site"
antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir "$DEST/site" \
    --project nexus.secrets --title "nexus.secrets" nexus.secrets >/dev/null
chmod og-w "$DEST/site/rst"  # antsibull-docs wants its output directory writable only by itself
antsibull-docs --config-file "$DEST/site/antsibull-docs.cfg" collection --cleanup everything \
    --use-current --fail-on-error --dest-dir "$DEST/site/rst" nexus.secrets >/dev/null

if [ "${DOCS_ONLINE:-0}" = 1 ]; then
    sphinx-build -q -b html -c "$DEST/site" -W --keep-going "$DEST/site/rst" "$DEST/html"
else
    printf '\n# scripts/build_docs.sh: offline build, no inventory downloads.\nintersphinx_mapping = {}\n' \
        >> "$DEST/site/conf.py"
    sphinx-build -q -b html -c "$DEST/site" -w "$DEST/warnings.log" "$DEST/site/rst" "$DEST/html"
    fatal="$(grep -v "undefined label: '\(ansible_collections\.ansible\.builtin\.[a-z_]*\|action_plugins\|common_return_values\|ansible_configuration_settings\)'" \
                  "$DEST/warnings.log" || true)"
    if [ -n "$fatal" ]; then
        printf 'Sphinx warnings:\n%s\n' "$fatal" >&2
        exit 1
    fi
fi
echo "docs site: $DEST/html/index.html"
