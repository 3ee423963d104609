#!/usr/bin/env bash
# Installs the Debian 12 packages stanzad needs to build, run and test. Skips apt when all are there.
# Usage: scripts/deps.sh [fuzz]   (fuzz: also clang with its libFuzzer runtime, for tests/fuzz/run.sh)
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git openssl
  libboost-dev libexpat1-dev libssl-dev libpugixml-dev libsqlite3-dev libidn-dev
  libfmt-dev libspdlog-dev libcli11-dev liblua5.4-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libmysqlcppconn-dev
  python3 python3-slixmpp sqlite3 mariadb-server
)
if [ "${1:-}" = fuzz ]; then packages+=(clang-14 libclang-rt-14-dev); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
