# Shared settings for the peer scripts (sourced, not run).
# Ports: stanzad 15222/15223, Prosody 25222/25223, ejabberd 35222/35223 (STARTTLS/direct TLS).
BENCH_ROOT=${BENCH_ROOT:-/tmp/stanzad-bench-peers}   # data directories of all three servers
BENCH_USERS=${BENCH_USERS:-10200}                      # user1..userN, password "password"
BENCH_PASSWORD=password
BENCH_DOMAIN=localhost
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)

# A self-signed ECDSA P-256 certificate for the domain, like stanzad's default one.
make_cert() {  # dir
  [ -f "$1/cert.pem" ] && return
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=$BENCH_DOMAIN" -addext "subjectAltName=DNS:$BENCH_DOMAIN" \
    -keyout "$1/key.pem" -out "$1/cert.pem" 2>/dev/null
  cat "$1/cert.pem" "$1/key.pem" > "$1/combined.pem"
}

wait_port() {  # port [seconds]
  local deadline=$((SECONDS + ${2:-60}))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -ge $deadline ] && { echo "port $1 did not open" >&2; return 1; }
    sleep 0.2
  done
}
