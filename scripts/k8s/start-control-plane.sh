#!/usr/bin/env bash
# Starts a real Kubernetes control plane on loopback, without containers, for tests and demos:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and KWOK playing the kubelet of
# one fake node with `nvidia.com/gpu: 8` (pods placed there are reported Running; no container
# runs). Binaries from scripts/k8s/build-control-plane.sh.
#
# usage: bash scripts/k8s/start-control-plane.sh [STATE_DIR]
#   Runs in the foreground until SIGTERM/SIGINT, then stops every process it started (by pid) and,
#   if it made STATE_DIR itself, removes it. Prints `ready KUBECONFIG` on stdout once the fake node
#   is Ready. Component logs: STATE_DIR/logs/.
# environment:
#   BBN_CACHE_DIR       where the binaries are (…/k8s/bin)
#   BBN_FAKE_GPUS       GPUs of the fake node (default 8)
#   BBN_READY_TIMEOUT   seconds to wait for each stage (default 90)
# Limits: the scheduler and controllers are real, but NetworkPolicies and PodDisruptionBudgets are
# only stored (no network plugin, no evictions), and PersistentVolumeClaims bind only to
# PersistentVolumes you create (no provisioner).
set -euo pipefail

CACHE_DIR="${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bbn}"
BIN="$CACHE_DIR/k8s/bin"
GPUS="${BBN_FAKE_GPUS:-8}"
TIMEOUT="${BBN_READY_TIMEOUT:-90}"
say() { printf 'control-plane: %s\n' "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run bash scripts/k8s/build-control-plane.sh"
done
command -v openssl >/dev/null || die "openssl is needed to make the API server's certificates"
command -v kubectl >/dev/null || die "kubectl is needed to wait for the fake node"

OWN_DIR=0
if [ $# -ge 1 ]; then
  STATE="$1"
  mkdir -p "$STATE"
else
  STATE="$(mktemp -d -t bbn-k8s-XXXXXX)"
  OWN_DIR=1
fi
mkdir -p "$STATE/logs" "$STATE/pki"

PIDS=()
cleanup() {
  trap - EXIT INT TERM
  # Reverse start order: KWOK and the controllers before the API server, etcd last.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[i]}" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ "$OWN_DIR" = 0 ] || rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ETCD_PORT="$(free_port)"
ETCD_PEER_PORT="$(free_port)"
API_PORT="$(free_port)"

# --- certificates and credentials (loopback only) ----------------------------------------------
PKI="$STATE/pki"
if [ ! -f "$PKI/apiserver.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bbn-test-ca" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\n' >"$PKI/ext"
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$PKI/ext" -out "$PKI/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  TOKEN="$(openssl rand -hex 24)"
  echo "$TOKEN,bbn-admin,1,system:masters" >"$PKI/tokens.csv"
fi
TOKEN="$(cut -d, -f1 "$PKI/tokens.csv")"
KUBECONFIG_FILE="$STATE/kubeconfig"
cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: bbn-test
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $PKI/ca.crt
users:
  - name: bbn-admin
    user:
      token: $TOKEN
contexts:
  - name: bbn-test
    context: { cluster: bbn-test, user: bbn-admin, namespace: default }
current-context: bbn-test
KC
chmod 600 "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"

wait_for() { # DESCRIPTION COMMAND...
  local what="$1" start=$SECONDS
  shift
  until "$@" >/dev/null 2>&1; do
    [ $((SECONDS - start)) -lt "$TIMEOUT" ] || die "$what not ready after ${TIMEOUT}s (logs in $STATE/logs)"
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || die "a component exited while waiting for $what (logs in $STATE/logs)"; done
    sleep 0.5
  done
  say "$what ready after $((SECONDS - start)) s"
}

# --- the components ----------------------------------------------------------------------------
"$BIN/etcd" --name default --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn \
  >"$STATE/logs/etcd.log" 2>&1 &
PIDS+=($!)

"$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --cert-dir "$STATE/apiserver" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" --client-ca-file "$PKI/ca.crt" \
  --token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$PKI/sa.pub" \
  --service-account-signing-key-file "$PKI/sa.key" --service-cluster-ip-range 10.0.0.0/24 \
  >"$STATE/logs/kube-apiserver.log" 2>&1 &
PIDS+=($!)
wait_for "API server" kubectl get --raw /readyz

"$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_FILE" --leader-elect=false \
  --bind-address 127.0.0.1 --secure-port 0 --use-service-account-credentials=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-cidr 10.1.0.0/16 --service-cluster-ip-range 10.0.0.0/24 \
  >"$STATE/logs/kube-controller-manager.log" 2>&1 &
PIDS+=($!)
"$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_FILE" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
  >"$STATE/logs/kube-scheduler.log" 2>&1 &
PIDS+=($!)
"$BIN/kwok" --kubeconfig "$KUBECONFIG_FILE" --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
  --node-ip 10.2.0.1 --cidr 10.2.0.0/16 --node-lease-duration-seconds 40 \
  >"$STATE/logs/kwok.log" 2>&1 &
PIDS+=($!)

# The fake GPU node. No taint, so that the chart's pods land on it as they would on a plain node.
kubectl apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: fake-gpu-0
  annotations: { kwok.x-k8s.io/node: fake }
  labels: { type: kwok, kubernetes.io/hostname: fake-gpu-0, nvidia.com/gpu.present: "true" }
status:
  allocatable: { cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS" }
  capacity: { cpu: "64", memory: 512Gi, pods: "110", nvidia.com/gpu: "$GPUS" }
NODE
wait_for "fake GPU node" kubectl wait --for=condition=Ready node/fake-gpu-0 --timeout=2s
# The default ServiceAccount of a namespace is made by a controller; pods need it to be admitted.
wait_for "default service account" kubectl get serviceaccount default -n default
echo "ready $KUBECONFIG_FILE"
# Stay in the foreground; the EXIT trap stops everything.
wait "${PIDS[@]}"
