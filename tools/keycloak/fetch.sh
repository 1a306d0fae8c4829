#!/usr/bin/env bash
# Fetch (once) and unpack the Keycloak server distribution by its Maven coordinates
#   org.keycloak:keycloak-quarkus-dist:<version>:tar.gz
# into ${THV_CACHE_DIR:-~/.cache/thv}/keycloak/<version>/keycloak-<version>.
#
# Progress goes to stderr; the only stdout line is the Keycloak home directory, so callers can
# do `KC_HOME=$(tools/keycloak/fetch.sh)`. A second run only checks the stamp and prints the path.
#
# Environment:
#   THV_KEYCLOAK_VERSION  version to fetch (default below: the newest 26.x the registry served
#                         when this was written; 26.2+ is needed for standard token exchange V2)
#   THV_CACHE_DIR         cache root (default ~/.cache/thv)
#   JAVA_HOME             used by the JDK check if it points at a JDK >= 21
# Exit codes: 0 ok, 2 Maven missing or the download failed, 3 no JDK >= 21 found.
set -euo pipefail

VERSION=${THV_KEYCLOAK_VERSION:-26.7.3}
PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.11.0
ROOT=${THV_CACHE_DIR:-$HOME/.cache/thv}/keycloak/$VERSION
HOME_DIR=$ROOT/keycloak-$VERSION
STAMP=$ROOT/.complete

say() { printf '[keycloak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- JDK >= 21 (Keycloak 26 does not support 17) -------------------------------------------
java_major() { # $1 = java binary; prints the feature version or nothing
  "$1" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}
find_jdk() {
  local cand major
  for cand in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/*; do
    [ -x "$cand/bin/java" ] || continue
    major=$(java_major "$cand/bin/java" || true)
    if [ -n "$major" ] && [ "$major" -ge 21 ]; then
      printf '%s\n' "$cand"
      return 0
    fi
  done
  return 1
}
if ! JDK=$(find_jdk); then
  say "ERROR: no JDK >= 21 found (looked at \$JAVA_HOME and /usr/lib/jvm/*); Keycloak $VERSION needs one"
  exit 3
fi
say "JDK for Keycloak: $JDK (java $(java_major "$JDK/bin/java"))"

if [ -f "$STAMP" ] && [ -x "$HOME_DIR/bin/kc.sh" ]; then
  say "Keycloak $VERSION cached at $HOME_DIR"
  printf '%s\n' "$HOME_DIR"
  exit 0
fi

command -v mvn >/dev/null || { say "ERROR: mvn not found (Maven is needed to fetch Keycloak)"; exit 2; }
mkdir -p "$ROOT"
exec 9>"$ROOT/.fetch.lock"
flock 9 # one fetch at a time per version
if [ -f "$STAMP" ] && [ -x "$HOME_DIR/bin/kc.sh" ]; then
  printf '%s\n' "$HOME_DIR"
  exit 0
fi

DL=$ROOT/download
rm -rf "$DL" "$ROOT/unpack"
mkdir -p "$DL"
ARTIFACT=org.keycloak:keycloak-quarkus-dist:$VERSION:tar.gz
say "downloading $ARTIFACT with Maven (about 170 MB the first time; Maven's local repository is reused)"
LOCAL_REPO=${MAVEN_LOCAL_REPO:-$HOME/.m2/repository}
PART_DIR=$LOCAL_REPO/org/keycloak/keycloak-quarkus-dist/$VERSION
(
  # progress: the size of what Maven has written so far, every 10 s
  while sleep 10 </dev/null >/dev/null 2>&1; do
    size=$(du -sm "$PART_DIR" 2>/dev/null | cut -f1 || true)
    say "  ... ${size:-0} MB so far"
  done
) &
WATCH=$!
trap 'kill "$WATCH" 2>/dev/null || true' EXIT
started=$(date +%s)
# Maven's own output (errors only, with -q) goes to stderr without colour codes
if ! mvn -B -ntp -q "$PLUGIN:copy" -Dartifact="$ARTIFACT" -DoutputDirectory="$DL" -Dmdep.useBaseVersion=true 2>&1 \
  | { sed -e 's/\x1b\[[0-9;]*m//g' | grep -v '^[[:space:]]*$' || true; } >&2; then
  say "ERROR: Maven could not fetch $ARTIFACT (is this version published? set THV_KEYCLOAK_VERSION)"
  exit 2
fi
kill "$WATCH" 2>/dev/null || true
ARCHIVE=$DL/keycloak-quarkus-dist-$VERSION.tar.gz
BYTES=$(stat -c %s "$ARCHIVE")
say "downloaded $((BYTES / 1048576)) MB in $(($(date +%s) - started)) s"

say "unpacking into $ROOT"
mkdir -p "$ROOT/unpack"
tar -xzf "$ARCHIVE" -C "$ROOT/unpack"
top=$(find "$ROOT/unpack" -mindepth 1 -maxdepth 1 -type d | head -n1)
[ -x "$top/bin/kc.sh" ] || { say "ERROR: unexpected archive layout (no bin/kc.sh under $top)"; exit 2; }
rm -rf "$HOME_DIR"
mv "$top" "$HOME_DIR"
rm -rf "$ROOT/unpack" "$DL"
printf '%s\n' "$BYTES" >"$ROOT/archive-bytes"
printf '%s\n' "$VERSION" >"$STAMP"
say "Keycloak $VERSION ready at $HOME_DIR"
printf '%s\n' "$HOME_DIR"
