#!/usr/bin/env bash
# A throw-away MariaDB server for the storage tests, on 127.0.0.1 only, in its own directory:
#   mariadb.sh start DIR PORT   fresh data directory, start, wait until it answers, create the
#                               test user stanzad / stanzad-test (unless DIR already holds data:
#                               then it only starts the server again on that data)
#   mariadb.sh fresh DIR PORT   kill whatever a previous run left in DIR, wipe it, then start
#   mariadb.sh stop DIR         shut down cleanly (and wait)
#   mariadb.sh kill DIR         SIGKILL, as a crash would
# Fails loudly (non-zero, with the server's log) when MariaDB is missing or does not come up.
set -euo pipefail
cmd=${1:?usage: mariadb.sh start|fresh|stop|kill DIR [PORT]}
dir=$(realpath -m "${2:?usage: mariadb.sh start|fresh|stop|kill DIR [PORT]}")
port=${3:-33306}
pidfile=$dir/mariadbd.pid
sock=$dir/mariadbd.sock
user_opt=()
[ "$(id -u)" -eq 0 ] && user_opt=(--user=root)

find_bin() {
  for b in "$@"; do
    if command -v "$b" >/dev/null 2>&1; then command -v "$b"; return 0; fi
    for d in /usr/sbin /usr/bin /usr/local/sbin /usr/local/bin; do
      [ -x "$d/$b" ] && { echo "$d/$b"; return 0; }
    done
  done
  echo "mariadb.sh: none of '$*' found: install mariadb-server (scripts/deps.sh)" >&2
  exit 1
}

alive() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

wait_gone() {
  for _ in $(seq 1 200); do
    alive || return 0
    sleep 0.1
  done
  echo "mariadb.sh: server in $dir did not stop" >&2
  return 1
}

if [ "$cmd" = fresh ]; then
  if alive; then
    kill -KILL "$(cat "$pidfile")" || true
    sleep 0.5
  fi
  rm -rf "$dir"
  cmd=start
fi

case "$cmd" in
start)
  mariadbd=$(find_bin mariadbd mysqld)
  client=$(find_bin mariadb mysql)
  fresh=0
  if [ ! -d "$dir/data/mysql" ]; then
    fresh=1
    rm -rf "$dir"
    mkdir -p "$dir/data"
    install=$(find_bin mariadb-install-db mysql_install_db)
    if ! "$install" --no-defaults "${user_opt[@]}" --datadir="$dir/data" --skip-test-db \
      --auth-root-authentication-method=socket >"$dir/install.log" 2>&1; then
      cat "$dir/install.log" >&2
      echo "mariadb.sh: mariadb-install-db failed" >&2
      exit 1
    fi
  fi
  alive && { echo "mariadb.sh: already running in $dir" >&2; exit 1; }
  "$mariadbd" --no-defaults "${user_opt[@]}" --datadir="$dir/data" --socket="$sock" \
    --port="$port" --bind-address=127.0.0.1 --pid-file="$pidfile" --log-error="$dir/error.log" \
    --skip-name-resolve --innodb-buffer-pool-size=256M --innodb-log-file-size=256M \
    --max-connections=200 --skip-log-bin >/dev/null 2>&1 &
  for _ in $(seq 1 300); do
    if "$client" --no-defaults --socket="$sock" -uroot -e "SELECT 1" >/dev/null 2>&1; then
      if [ "$fresh" -eq 1 ]; then
        "$client" --no-defaults --socket="$sock" -uroot -e "
          CREATE USER 'stanzad'@'127.0.0.1' IDENTIFIED BY 'stanzad-test';
          GRANT ALL PRIVILEGES ON *.* TO 'stanzad'@'127.0.0.1';"
      fi
      echo "mariadb.sh: MariaDB up on 127.0.0.1:$port ($dir)"
      exit 0
    fi
    sleep 0.1
  done
  cat "$dir/error.log" >&2 || true
  echo "mariadb.sh: MariaDB did not answer within 30 s" >&2
  exit 1
  ;;
stop)
  if alive; then
    kill -TERM "$(cat "$pidfile")"
    wait_gone
  fi
  ;;
kill)
  if alive; then
    kill -KILL "$(cat "$pidfile")"
    wait_gone
  fi
  ;;
*)
  echo "usage: mariadb.sh start|fresh|stop|kill DIR [PORT]" >&2
  exit 2
  ;;
esac
