#!/usr/bin/env bash
# Helm, built from the Go module proxy (no other download is needed) into the project's cache.
#
# Idempotent: if the cached binary already reports the pinned version it exits at once.
# Not part of `scripts/setup.sh` (which runs every scripts/setup-*.sh): a cold build takes
# minutes on two cores, so it is run on demand, by `npm run setup:k8s` or by hand.
#
# usage: bash scripts/k8s/setup-helm.sh
# environment:
#   BBN_CACHE_DIR  cache root (default ${XDG_CACHE_HOME:-~/.cache}/bbn); helm lands in $BBN_CACHE_DIR/bin
#   HELM_VERSION   override the pinned version (default v3.22.0)
# prints: the path of the helm binary on its last line.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_DIR="${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bbn}"
BIN_DIR="$CACHE_DIR/bin"
HELM="$BIN_DIR/helm"

say() { printf 'setup-helm: %s\n' "$*" >&2; }

# The stamp records how the binary was built (version and Kubernetes default), so that a binary
# built by an older version of this script is rebuilt.
STAMP="$BIN_DIR/helm.build"
if [ -x "$HELM" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HELM_VERSION k8s-default-from-client-go" ] &&
  "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  say "helm $HELM_VERSION already in $BIN_DIR"
  echo "$HELM"
  exit 0
fi

command -v go >/dev/null || { say "FAILED: go is not installed (needed to build helm from the Go module proxy)"; exit 1; }
mkdir -p "$BIN_DIR"
say "building helm $HELM_VERSION with $(go version | cut -d' ' -f3) (a few minutes from a cold cache)"
start=$SECONDS
# Helm's Makefile sets its version, and the Kubernetes version that `helm template` and `helm lint`
# assume (without it: v1.20, which charts needing newer APIs refuse), by ldflags; set them the same
# way. The Kubernetes version is client-go's v0.X -> 1.X, read from helm's own go.mod.
gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
k8s_minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")"
[ -n "$k8s_minor" ] || { say "FAILED: cannot read the client-go version from $gomod"; exit 1; }
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags="$ldflags -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done
# GOBIN puts the binary straight into the cache; -trimpath keeps the build reproducible.
GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:-} -trimpath" go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$HELM" version --template '{{.Version}}' | grep -qx "$HELM_VERSION" \
  || { say "FAILED: built helm does not report $HELM_VERSION"; exit 1; }
echo "$HELM_VERSION k8s-default-from-client-go" >"$STAMP"
say "built in $((SECONDS - start)) s (default Kubernetes version 1.$k8s_minor)"
echo "$HELM"
