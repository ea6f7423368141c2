#!/usr/bin/env bash
# Runs wire-check.ts, wire-interop.ts and test/collective/native-plane.test.ts (bf16 included) against a build of the shipped addon (native/ring-plane,
# the sources scripts/setup-native.sh builds) with AddressSanitizer and UBSan, so that a read of
# wire.c's classifier outside a message (each one is its own exact-size allocation in
# wire-check.ts), a bad access of the plane's thread while native and JavaScript ranks share a
# ring (wire-interop.ts), or undefined behaviour stops the run. The sanitizer build goes to a
# temporary directory (removed at exit) and reaches the checks through BBN_RING_PLANE_ADDON, the
# variable src/collective/native-plane.ts loads another build from. Bench only; needs gcc's
# libasan and libubsan.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../../.." && pwd)/native/ring-plane"
cc="${CC:-gcc}"
inc="$(dirname "$(dirname "$(command -v node)")")/include/node"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
out="$tmp/ring_plane-asan.node"
"$cc" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
  -Wall -Wextra -Werror -shared -fPIC -I"$inc" -DNODE_GYP_MODULE_NAME=ring_plane -o "$out" \
  "$src"/*.c -lpthread
# Node itself is not instrumented: leaks at exit are V8's, not the addon's.
export ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 BBN_RING_PLANE_ADDON="$out"
preload="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)"
# The checks must load this build, not native/ring-plane/build's: the mapped file says which.
LD_PRELOAD="$preload" node --import tsx -e "
  const { ringPlaneAddon } = await import('$src/../../src/collective/native-plane.ts');
  const a = ringPlaneAddon();
  if (typeof a === 'string') throw new Error(a);
  const { readFileSync } = await import('node:fs');
  if (!readFileSync('/proc/self/maps', 'utf8').includes('$out')) {
    console.error('wire-check-asan: the sanitizer build is not the addon loaded');
    process.exit(1);
  }
"
for check in "$here/wire-check.ts" "$here/wire-interop.ts" "$src/../../test/collective/native-plane.test.ts"; do
  echo "== $(basename "$check") (ASan + UBSan)"
  if ! LD_PRELOAD="$preload" node --import tsx "$check" | tail -8; then
    echo "$check failed under the sanitizers" >&2
    exit 1
  fi
done
