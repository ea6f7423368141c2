#!/usr/bin/env bash
# tmux, for the terminal test (test/cli/terminal.test.ts drives `bbn train` in a real TTY and sends
# Ctrl-C with send-keys). Idempotent: nothing to do when tmux is on PATH. Installed with apt when
# this user may; otherwise says how, and the test reports itself skipped with the same hint.
set -euo pipefail
if command -v tmux >/dev/null 2>&1; then
  echo "setup-terminal: tmux $(tmux -V | cut -d' ' -f2) present"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -qq tmux >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq tmux >/dev/null; }
  echo "setup-terminal: installed $(tmux -V)"
else
  echo "setup-terminal: tmux missing; install it (apt-get install tmux) to run the terminal test"
fi
