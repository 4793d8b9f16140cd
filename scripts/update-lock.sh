#!/usr/bin/env bash
# Regenerate requirements.lock: every Python dependency of the project (setup.cfg's
# install_requires) and the install tools (scripts/lock-tools.in: pip, setuptools,
# wheel), each pinned to one version with the SHA-256 of every file published for it.
# scripts/setup.sh installs exactly these with `pip install --require-hashes`.
#
#   scripts/update-lock.sh             keep the pinned versions that still satisfy setup.cfg
#   scripts/update-lock.sh --upgrade   move every package to its newest allowed version
#   scripts/update-lock.sh -P rich     move one package (pip-compile's --upgrade-package)
#
# Then commit requirements.lock with the change that needed it; the next
# `make test`/`scripts/setup.sh` re-installs the virtualenv (its stamp hashes the lock).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools/venv"
"$tools/venv/bin/python" -m pip install -q --disable-pip-version-check "pip-tools>=7.4"
"$tools/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras \
  --no-emit-index-url --no-emit-find-links --output-file requirements.lock "$@" setup.cfg scripts/lock-tools.in
echo "update-lock: requirements.lock written ($(grep -c '^[A-Za-z0-9]' requirements.lock) packages); sha256 $(sha256sum requirements.lock | cut -c1-16)..."
