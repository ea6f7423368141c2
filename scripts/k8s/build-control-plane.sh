#!/usr/bin/env bash
# A real Kubernetes control plane for tests, built only from the Go module proxy, no containers:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and KWOK (which plays the
# kubelets of fake nodes). Cached in $BBN_CACHE_DIR/k8s/bin; idempotent (each binary is rebuilt
# only when it is missing or reports another version).
#
# Why a wrapper module: `go install k8s.io/kubernetes/cmd/...@v1.34.4` is refused, because
# kubernetes' go.mod replaces its k8s.io/* staging modules with local paths. A small module that
# requires k8s.io/kubernetes and points each staging module at its published v0.34.x instead
# builds the commands unchanged.
#
# usage: bash scripts/k8s/build-control-plane.sh
# environment:
#   BBN_CACHE_DIR   cache root (default ${XDG_CACHE_HOME:-~/.cache}/bbn)
#   BBN_K8S_PARTS   which parts to build (default "kubernetes etcd kwok"); parts build
#                   independently, so two invocations with different parts may run in parallel
# cost: about 6 minutes of CPU on 2 cores from a cold Go cache; ~400 MB of binaries.
set -euo pipefail

K8S_VERSION=1.34.4
STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
CACHE_DIR="${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bbn}"
BIN_DIR="$CACHE_DIR/k8s/bin"
SRC_DIR="$CACHE_DIR/k8s/src"
# The staging modules that kubernetes' go.mod replaces with ./staging/src/k8s.io/<name>.
STAGING=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller)

say() { printf 'build-control-plane: %s\n' "$*" >&2; }
command -v go >/dev/null || { say "FAILED: go is not installed"; exit 1; }
mkdir -p "$BIN_DIR" "$SRC_DIR"
export GOFLAGS="${GOFLAGS:-} -trimpath"

# A stamp file per binary records the version it was built at: some of these binaries print
# their version only after a slow start-up, so asking them would cost more than this check.
fresh() { [ -x "$BIN_DIR/$1" ] && [ "$(cat "$BIN_DIR/$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN_DIR/$1.version"; }

PARTS=" ${BBN_K8S_PARTS:-kubernetes etcd kwok} "
want() { [[ "$PARTS" == *" $1 "* ]]; }

start=$SECONDS
if ! want kubernetes; then
  :
elif fresh kube-apiserver "v$K8S_VERSION" && fresh kube-controller-manager "v$K8S_VERSION" &&
  fresh kube-scheduler "v$K8S_VERSION"; then
  say "kubernetes v$K8S_VERSION already built"
else
  mod="$SRC_DIR/kubernetes"
  mkdir -p "$mod"
  {
    echo "module bbn.local/k8s-control-plane"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    echo "replace ("
    for m in "${STAGING[@]}"; do echo "	k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
    echo ")"
  } >"$mod/go.mod"
  # A blank-import file keeps the three commands' packages in the module graph for `go mod tidy`.
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  say "resolving k8s.io/kubernetes v$K8S_VERSION"
  (cd "$mod" && go get "k8s.io/kubernetes@v$K8S_VERSION")
  # tidy fills go.sum for the three commands' whole import graph (via tools.go); -e because some
  # test-only imports of kubernetes do not resolve outside its own tree, which the build never needs.
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1) || say "go mod tidy reported problems; building anyway"
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
    say "building $cmd"
    (cd "$mod" && go build -ldflags "$ldflags" -o "$BIN_DIR/$cmd" "k8s.io/kubernetes/cmd/$cmd")
    stamp "$cmd" "v$K8S_VERSION"
  done
fi

if ! want etcd; then
  :
elif fresh etcd "$ETCD_VERSION"; then
  say "etcd $ETCD_VERSION already built"
else
  mod="$SRC_DIR/etcd"
  mkdir -p "$mod"
  printf 'module bbn.local/etcd\n\ngo 1.24\n' >"$mod/go.mod"
  cat >"$mod/main.go" <<'GO'
// etcd's own main, unchanged: the server module's etcdmain is the whole command.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  say "building etcd $ETCD_VERSION"
  (cd "$mod" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" && go mod tidy && go build -ldflags "-s -w" -o "$BIN_DIR/etcd" .)
  stamp etcd "$ETCD_VERSION"
fi

if ! want kwok; then
  :
elif fresh kwok "$KWOK_VERSION"; then
  say "kwok $KWOK_VERSION already built"
else
  say "building kwok $KWOK_VERSION"
  GOBIN="$BIN_DIR" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  stamp kwok "$KWOK_VERSION"
fi
say "done in $((SECONDS - start)) s: $BIN_DIR"
echo "$BIN_DIR"
