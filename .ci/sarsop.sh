#!/usr/bin/env bash
# Build SARSOP's pomdpsol (GPL-2.0, never part of trimpomdp) from ../shared/vendor/sarsop into a
# cache folder outside the repository, for the binding tests and benchmarks/classic_pomdp.py.
# Prints the path of pomdpsol on its last line; exits 0 without building when the source is absent.
#   usage: bash .ci/sarsop.sh            then: export POMDPSOL="$(bash .ci/sarsop.sh | tail -1)"
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${SARSOP_SOURCE:-$here/../shared/vendor/sarsop/sarsop-d914110.tar.gz}"
cache="${SARSOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/trimpomdp-sarsop}"
sha=895e7e5777f15723fab50566663eae7890468149bf010afe925ea82a8ac3e208
exe="$cache/d914110/sarsop/src/pomdpsol"
if [ -x "$exe" ]; then echo "$exe"; exit 0; fi
if [ ! -f "$src" ]; then
  echo "sarsop.sh: $src absent; pomdpsol not built (binding tests will skip)" >&2
  echo ""; exit 0
fi
echo "$sha  $src" | sha256sum -c --quiet - || { echo "sarsop.sh: checksum mismatch for $src" >&2; exit 1; }
rm -rf "$cache/d914110.tmp" && mkdir -p "$cache/d914110.tmp"
tar -xzf "$src" -C "$cache/d914110.tmp"
dir="$(dirname "$(find "$cache/d914110.tmp" -maxdepth 3 -type d -name src -path '*sarsop*' | head -1)")"
[ -d "$dir/src" ] || { echo "sarsop.sh: no sarsop/src in $src" >&2; exit 1; }
# -fcommon: plain make fails to link on gcc >= 10 ("multiple definition of 'IP'", upstream #6)
make -C "$dir/src" -j"${SARSOP_JOBS:-2}" CC="gcc -fcommon" CXX="g++ -fcommon" pomdpsol \
  >"$cache/build.log" 2>&1 || { tail -20 "$cache/build.log" >&2; exit 1; }
rm -rf "$cache/d914110" && mv "$cache/d914110.tmp" "$cache/d914110"
[ -x "$exe" ] || { echo "sarsop.sh: build finished but $exe is missing" >&2; exit 1; }
echo "$exe"
