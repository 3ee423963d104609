#!/usr/bin/env bash
# stanzactl end to end: runs the real binary against a temporary config and data directory.
# Usage: stanzactl_test.sh PATH/TO/stanzactl
set -u
ctl=$1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/stanzactl-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/conf"
config=$tmp/conf/stanzad.xml
cat >"$config" <<'XML'
<?xml version="1.0"?>
<stanzad>
  <server data-dir="../data"/>
  <host name="localhost"/>
  <host name="example.com"/>
  <c2s address="127.0.0.1" port="5222"/>
</stanzad>
XML

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# run EXPECTED_EXIT EXPECTED_STDOUT EXPECTED_STDERR ARGS...: one command, checked exactly.
run() {
  local want_rc=$1 want_out=$2 want_err=$3
  shift 3
  local out err rc
  out=$("$ctl" --config "$config" "$@" 2>"$tmp/stderr" </dev/null)
  rc=$?
  err=$(cat "$tmp/stderr")
  [[ $rc == "$want_rc" ]] || fail "stanzactl $*: exit $rc, want $want_rc (stderr: $err)"
  [[ $out == "$want_out" ]] || fail "stanzactl $*: stdout '$out', want '$want_out'"
  [[ $err == "$want_err" ]] || fail "stanzactl $*: stderr '$err', want '$want_err'"
}

run 0 "created user romeo@localhost" "" adduser romeo@localhost s3cret
run 0 "created user juliet@localhost" "" adduser Juliet@LocalHost pw
run 0 "created user nurse@example.com" "" adduser nurse@example.com pw
run 1 "" "stanzactl: user romeo@localhost already exists" adduser romeo@localhost other
[[ -f $tmp/data/stanzad.sqlite ]] || fail "no database in the configured data-dir"

run 0 $'juliet@localhost\nnurse@example.com\nromeo@localhost' "" list
run 0 $'juliet@localhost\nromeo@localhost' "" list localhost
run 1 "" "stanzactl: example.org is not a host in $config" list example.org

run 0 "changed password of romeo@localhost" "" passwd romeo@localhost n3w
run 1 "" "stanzactl: no user tybalt@localhost" passwd tybalt@localhost pw
run 0 "deleted user juliet@localhost" "" deluser juliet@localhost
run 1 "" "stanzactl: no user juliet@localhost" deluser juliet@localhost
run 0 $'nurse@example.com\nromeo@localhost' "" list

run 1 "" "stanzactl: example.org is not a host in $config" adduser romeo@example.org pw
run 1 "" "stanzactl: 'romeo@localhost/balcony' is not a bare JID user@host" adduser romeo@localhost/balcony pw
run 1 "" "stanzactl: 'localhost' is not a bare JID user@host" adduser localhost pw
run 1 "" "stanzactl: 'ro meo@localhost' is not a valid JID" adduser "ro meo@localhost" pw
run 1 "" "stanzactl: the password must not be empty" adduser benvolio@localhost ""
run 1 "" "stanzactl: the password must not be empty" adduser benvolio@localhost

# The password may come on standard input instead of the command line.
out=$(echo "from-stdin" | "$ctl" --config "$config" adduser benvolio@localhost 2>&1) ||
  fail "adduser with the password on stdin: $out"
[[ $out == "created user benvolio@localhost" ]] || fail "adduser with the password on stdin: '$out'"

# Usage errors: one line, exit 2.
"$ctl" --config "$config" frobnicate >/dev/null 2>"$tmp/stderr"
rc=$?
[[ $rc == 2 ]] || fail "unknown subcommand: exit $rc, want 2"
[[ $(wc -l <"$tmp/stderr") == 1 && $(cat "$tmp/stderr") == "stanzactl: "* ]] ||
  fail "unknown subcommand: stderr '$(cat "$tmp/stderr")'"
"$ctl" --config "$config" >/dev/null 2>"$tmp/stderr" && fail "no subcommand succeeded"
[[ $(wc -l <"$tmp/stderr") == 1 ]] || fail "no subcommand: stderr '$(cat "$tmp/stderr")'"

# A broken config names file and line.
printf '<stanzad>\n  <host name="localhost"/>\n  <c2s port="70000"/>\n</stanzad>\n' >"$tmp/bad.xml"
out=$("$ctl" --config "$tmp/bad.xml" list 2>&1)
rc=$?
[[ $rc == 1 && $out == "stanzactl: $tmp/bad.xml:3: option 'c2s/port': '70000' is not a port number" ]] ||
  fail "bad config: exit $rc, '$out'"
out=$("$ctl" --config "$tmp/absent.xml" list 2>&1) && fail "missing config succeeded"
[[ $out == "stanzactl: $tmp/absent.xml: cannot open: No such file or directory" ]] || fail "missing config: '$out'"

# --help and --version go to stdout and succeed.
"$ctl" --help | grep -q adduser || fail "--help does not mention adduser"
"$ctl" --version | grep -q '^stanzactl [0-9]' || fail "--version: '$("$ctl" --version)'"

if ((failures > 0)); then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "stanzactl: all checks passed"
