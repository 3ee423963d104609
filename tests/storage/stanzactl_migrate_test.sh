#!/usr/bin/env bash
# stanzactl moves a server from SQLite to MariaDB: export, import, and the MariaDB copy
# exports to the very same file. Usage: stanzactl_migrate_test.sh STANZACTL PORT
set -euo pipefail
ctl=$1
port=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/sqlite.xml" <<XML
<stanzad><server data-dir="data"/><host name="localhost"/><host name="example.org"/><c2s/></stanzad>
XML
cat >"$tmp/mysql.xml" <<XML
<stanzad><host name="localhost"/><host name="example.org"/><c2s/>
  <storage backend="mysql" host="127.0.0.1" port="$port" database="migrate_$$" user="stanzad"
           password-env="STANZAD_TEST_DB_PASSWORD"/></stanzad>
XML
export STANZAD_TEST_DB_PASSWORD=stanzad-test
"$ctl" -c "$tmp/sqlite.xml" adduser romeo@localhost 'wherefore art thou' >/dev/null
"$ctl" -c "$tmp/sqlite.xml" adduser juliet@localhost 'a rose by any other name' >/dev/null
"$ctl" -c "$tmp/sqlite.xml" adduser nurse@example.org 'anon' >/dev/null
"$ctl" -c "$tmp/sqlite.xml" export "$tmp/a.xml" 2>/dev/null
grep -q "<scram-credentials xmlns=\"urn:xmpp:pie:0#scram\" mechanism=\"SCRAM-SHA-1\">" "$tmp/a.xml"
"$ctl" -c "$tmp/mysql.xml" import "$tmp/a.xml" | grep -q "imported 3 users"
diff <("$ctl" -c "$tmp/sqlite.xml" list) <("$ctl" -c "$tmp/mysql.xml" list)
"$ctl" -c "$tmp/mysql.xml" export "$tmp/b.xml" 2>/dev/null
cmp "$tmp/a.xml" "$tmp/b.xml"
# A bad file is refused with one line and writes nothing.
echo '<server-data xmlns="urn:xmpp:pie:0"><host jid="nowhere"/></server-data>' >"$tmp/bad.xml"
if "$ctl" -c "$tmp/mysql.xml" import "$tmp/bad.xml" 2>"$tmp/err"; then exit 1; fi
grep -q "host 'nowhere' is not configured here" "$tmp/err"
echo "stanzactl export/import SQLite -> MariaDB: ok"
