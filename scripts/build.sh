#!/usr/bin/env bash
# Configures (once) and builds stanzad into build/ with ccache and two jobs. Extra args go to cmake --build.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache keyed on paths relative to the checkout: any clone (CI's, a worktree) reuses the cache.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
if [ ! -f build/build.ninja ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
fi
cmake --build build -j2 "$@"
