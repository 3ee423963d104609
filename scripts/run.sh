#!/usr/bin/env bash
# Installs what is missing, builds, and runs stanzad on the default configuration
# (conf/stanzad.xml: domain localhost, SQLite in data/, a self-signed certificate made on first run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh --target stanzad stanzactl
if [ -z "$(./build/tools/stanzactl/stanzactl list localhost 2>/dev/null)" ]; then
  echo "No accounts yet. In another terminal, create one with:"
  echo "  ./build/tools/stanzactl/stanzactl adduser you@localhost PASSWORD"
  echo "then log in with any XMPP client to localhost:5222 (STARTTLS) or :5223 (direct TLS)."
fi
exec ./build/server/stanzad "$@"
