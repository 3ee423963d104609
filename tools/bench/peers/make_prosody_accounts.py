#!/usr/bin/env python3
"""Writes Prosody internal_hashed accounts (SCRAM-SHA-1 keys, 4096 iterations, random salt per
account, as prosodyctl would) straight into the data directory: 10,000 accounts in seconds
instead of one prosodyctl process each."""
import hashlib
import hmac
import os
import sys

data_dir, host, pattern, count, password = sys.argv[1], sys.argv[2], sys.argv[3], int(
    sys.argv[4]), sys.argv[5]
iterations = 4096
# Prosody encodes host names in paths: '.' -> %2e, '-' -> %2d.
enc = "".join(c if c.isalnum() or c == "_" else "%%%02x" % ord(c) for c in host)
accounts = os.path.join(data_dir, enc, "accounts")
os.makedirs(accounts, exist_ok=True)
for n in range(1, count + 1):
    user = pattern.replace("%d", str(n))
    salt = os.urandom(16).hex()
    salted = hashlib.pbkdf2_hmac("sha1", password.encode(), salt.encode(), iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha1).digest()
    stored_key = hashlib.sha1(client_key).hexdigest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha1).hexdigest()
    with open(os.path.join(accounts, user + ".dat"), "w") as f:
        f.write("return {\n"
                f'\t["iteration_count"] = {iterations};\n'
                f'\t["salt"] = "{salt}";\n'
                f'\t["server_key"] = "{server_key}";\n'
                f'\t["stored_key"] = "{stored_key}";\n'
                "};\n")
print(f"wrote {count} accounts to {accounts}")
