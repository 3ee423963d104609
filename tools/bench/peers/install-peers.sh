#!/usr/bin/env bash
# Installs Prosody and ejabberd from Debian for side-by-side measurements, and makes sure the
# system services stay stopped (they would hold 5222/5269/5280). Not part of scripts/deps.sh:
# CI does not run the peers.
set -euo pipefail
if ! dpkg -s prosody ejabberd >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y prosody ejabberd
fi
for svc in prosody ejabberd; do
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$svc" || true
  else
    service "$svc" stop >/dev/null 2>&1 || true
    update-rc.d "$svc" disable >/dev/null 2>&1 || true
  fi
done
# The Debian ejabberd package may leave an epmd running; the bench node starts its own.
echo "prosody and ejabberd installed; system services stopped and disabled"
