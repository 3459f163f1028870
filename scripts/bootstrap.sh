#!/usr/bin/env bash
# Creates .venv and installs hookstream with its development tools; safe to run again.
# --test-tools also installs what only the test suite needs (Go tools for the deploy checks).
set -euo pipefail
test_tools=false
if [ "${1:-}" = "--test-tools" ]; then
  test_tools=true
fi
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "hookstream needs Python 3.11 or newer; set PYTHON to one." >&2
  exit 2
fi
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "note: '$tool' is not on PATH; the local Kafka broker needs Java 17+ and Maven." >&2
  fi
done
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch "$stamp"
fi
# tests/deploy checks docker-compose.yml with compose-go, the Compose Specification's reference
# loader (a small Go program in tests/deploy/composecheck), and renders k8s/ with kustomize (the
# same engine as `kubectl kustomize`), scores it with kube-score and validates its KEDA and
# Prometheus Operator resources against their projects' CRDs (tests/deploy/crds.py, same
# versions); all come from the Go module proxy.
KUSTOMIZE_VERSION=v5.5.0
KUBE_SCORE_VERSION=v1.20.0
CRD_MODULES="github.com/kedacore/keda/v2@v2.21.0 github.com/prometheus-operator/prometheus-operator@v0.85.0"
if ! $test_tools; then
  exit 0
fi
if command -v go >/dev/null 2>&1; then
  (cd tests/deploy/composecheck && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go mod download)
  if [ ! -f ".venv/.kustomize-$KUSTOMIZE_VERSION" ] || [ ! -x .venv/bin/kustomize ]; then
    GOBIN="$PWD/.venv/bin" GOTOOLCHAIN=local GOFLAGS= \
      go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
    touch ".venv/.kustomize-$KUSTOMIZE_VERSION"
  fi
  if [ ! -f ".venv/.kube-score-$KUBE_SCORE_VERSION" ] || [ ! -x .venv/bin/kube-score ]; then
    GOBIN="$PWD/.venv/bin" GOTOOLCHAIN=local GOFLAGS= \
      go install "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION"
    touch ".venv/.kube-score-$KUBE_SCORE_VERSION"
  fi
  # shellcheck disable=SC2086 # one word per module
  GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download $CRD_MODULES
else
  echo "note: 'go' is not on PATH; tests/deploy needs Go 1.24+ to check docker-compose.yml." >&2
fi
