#!/usr/bin/env bash
# Upgrades an installation as docs/operations.md ("Upgrade") describes, with kubectl:
#   scripts/upgrade.sh [--schema-change] [--namespace NS] OVERLAY
# --schema-change: the release changes a record schema (schemas/), so old and new processes must
# not run side by side: every Deployment is scaled to 0 and its pods gone before the apply.
set -euo pipefail
namespace=hookstream
schema_change=false
overlay=
while [ $# -gt 0 ]; do
  case "$1" in
    --schema-change) schema_change=true ;;
    --namespace) namespace="$2"; shift ;;
    -h|--help) sed -n 2,5p "$0"; exit 0 ;;
    -*) echo "upgrade.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) overlay="$1" ;;
  esac
  shift
done
if [ -z "$overlay" ] || [ ! -f "$overlay/kustomization.yaml" ]; then
  echo "upgrade.sh: give the folder of your overlay (a kustomization.yaml), e.g. k8s/overlays/example" >&2
  exit 2
fi
services=(deploy/hookstream-admin deploy/hookstream-matcher deploy/hookstream-sender)
k() { echo "+ kubectl $*" >&2; kubectl "$@"; }

# A Job's pod template is immutable: the previous topics Job must go before the new one is applied.
k -n "$namespace" delete job hookstream-topics --ignore-not-found --wait=true
if [ "$schema_change" = true ]; then
  k -n "$namespace" scale "${services[@]}" --replicas=0
  k -n "$namespace" wait --for=delete pod \
    -l 'app.kubernetes.io/name=hookstream,app.kubernetes.io/component in (admin,matcher,sender)' \
    --timeout=5m
fi
# The replica counts of the overlay (or KEDA's) come back with the apply.
k apply -k "$overlay"
# The topics Job is absent with the Strimzi component (KafkaTopic resources instead).
if [ -n "$(k -n "$namespace" get job hookstream-topics --ignore-not-found -o name)" ]; then
  k -n "$namespace" wait --for=condition=complete job/hookstream-topics --timeout=15m
fi
for service in "${services[@]}"; do
  k -n "$namespace" rollout status "$service" --timeout=15m
done
echo "upgrade.sh: every Deployment rolled out" >&2
