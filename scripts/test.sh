#!/usr/bin/env bash
# The test command: set up (system packages, .venv, pytest), start virtlogd + libvirtd
# (or reuse a running one), run the whole suite including the @libvirtd and @realhost
# tests, and stop what was started, whatever pytest's outcome.
#
#   scripts/test.sh [PYTEST ARGS...]     e.g. scripts/test.sh -x tests/core
#
# Exit code: pytest's, except that "no tests collected" (5) is a failure (1).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
T0=$SECONDS

bash scripts/setup.sh --tests
T_SETUP=$((SECONDS - T0))

STATE=$(mktemp -d "${TMPDIR:-/tmp}/virtscenario-libvirtd.XXXXXX")
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local rc=$?
    bash scripts/libvirtd.sh stop "$STATE" || rc=1
    rm -rf "$STATE"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

T1=$SECONDS
bash scripts/libvirtd.sh start "$STATE"
T_DAEMON=$((SECONDS - T1))

T2=$SECONDS
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
T_TESTS=$((SECONDS - T2))
echo "test.sh: setup ${T_SETUP} s, libvirtd ${T_DAEMON} s, pytest ${T_TESTS} s"
if [ "$rc" -eq 5 ]; then
    echo "Error: pytest collected no tests" >&2
    rc=1
fi
exit "$rc"
