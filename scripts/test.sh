#!/usr/bin/env bash
# Runs every lane: lint/types/layering, then unit + netns + kube under pytest, then
# the vm lane under a real kernel in QEMU. In CI (CI set) as root, a privileged test
# that cannot run fails the run instead of skipping.
set -euo pipefail
venv=${1:-.venv}
what=${2:-all}
cd "$(dirname "$0")/.."
bin="$venv/bin"

lint() {
    echo "== ruff"; "$bin/ruff" check cni delegates meta tests bench tools
    echo "== mypy"; "$bin/mypy"
    echo "== import-linter"; "$bin/lint-imports"
}

pytest_lanes() {
    echo "== pytest (unit, netns, kube)"
    "$bin/python" -m pytest -p no:cacheprovider tests --ignore=tests/vm
}

vm_lane() {
    echo "== vm lane (real kernel under QEMU)"
    "$bin/python" -m tools.vm.run -- "$PWD/$bin/python" -m pytest -p no:cacheprovider -p no:hypothesispytest -q tests/vm
}

case "$what" in
    lint) lint ;;
    vm) vm_lane ;;
    pytest) pytest_lanes ;;
    all) lint; pytest_lanes; vm_lane ;;
    *) echo "usage: test.sh VENV [all|lint|pytest|vm]" >&2; exit 2 ;;
esac
