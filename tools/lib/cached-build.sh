# shellcheck shell=bash
# Shared by tools/<tool>/build.sh: build a Go program once into a cache keyed by its pins.
#
# The sourcing script sets NAME (cache directory and log prefix) and BIN (the binary's file
# name), defines `key_input` (prints everything that determines the output: Go version, pins,
# ldflags, go.mod/go.sum) and `build_into DIR` (builds BIN into DIR), then calls `cached_build`.
# The binary lands in ${THV_CACHE_DIR:-~/.cache/thv}/$NAME/<key>/bin; its path is printed as the
# last line on stdout, progress goes to stderr, concurrent callers wait for one another (flock)
# and share the result, and a half-finished build is never published.

log() { printf '[%s %s] %s\n' "$NAME" "$(date +%H:%M:%S)" "$*" >&2; }

cached_build() {
  local key root cache bin start
  key=$(key_input | sha256sum | cut -c1-16)
  root="${THV_CACHE_DIR:-$HOME/.cache/thv}/$NAME"
  cache="$root/$key"
  bin="$cache/bin"
  if [ -x "$bin/$BIN" ]; then
    echo "$NAME: cached binary in $bin" >&2
    echo "$bin/$BIN"; return 0
  fi
  mkdir -p "$root"
  exec 9>"$root/.build.lock"
  if ! flock -n 9; then
    log "another build is running; waiting for it (lock $root/.build.lock)"
    flock 9
  fi
  if [ -x "$bin/$BIN" ]; then # built by the process we waited for
    echo "$NAME: cached binary in $bin" >&2
    echo "$bin/$BIN"; return 0
  fi
  rm -rf "$bin.partial"; mkdir -p "$bin.partial"
  start=$(date +%s)
  log "building into $cache"
  build_into "$bin.partial"
  rm -rf "$bin"; mv "$bin.partial" "$bin"
  log "built in $(( $(date +%s) - start ))s ($(du -sh "$bin/$BIN" | cut -f1))"
  echo "$bin/$BIN"
}
