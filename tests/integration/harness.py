"""Integration test harness: runs the real stanzad binary on loopback ports in a temp dir.

Every test starts its own server (fresh data directory, free ports) so tests are independent.
Paths to the binaries come from the environment ctest sets (STANZAD, STANZACTL).
"""
import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

STANZAD = os.environ.get("STANZAD", "build/server/stanzad")
STANZACTL = os.environ.get("STANZACTL", "build/tools/stanzactl/stanzactl")
HOST = "localhost"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running stanzad. Use as a context manager."""

    def __init__(self, users=(), limits="", extra_config="", require_tls=True, shards=2,
                 log_level="debug"):
        self.dir = tempfile.mkdtemp(prefix="stanzad-it-")
        self.port = free_port()
        self.tls_port = free_port()
        self.config = os.path.join(self.dir, "stanzad.xml")
        self.log = os.path.join(self.dir, "stanzad.log")
        with open(self.config, "w") as f:
            f.write(f"""<?xml version="1.0"?>
<stanzad>
  <server shards="{shards}" data-dir="data"/>
  <log level="{log_level}" file=""/>
  <host name="{HOST}"/>
  <c2s address="127.0.0.1" port="{self.port}" require-tls="{'true' if require_tls else 'false'}"/>
  <c2s-tls address="127.0.0.1" port="{self.tls_port}"/>
  <limits {limits}/>
  {extra_config}
</stanzad>
""")
        for user, password in users:
            self.ctl("adduser", f"{user}@{HOST}", password)
        self.proc = None

    @property
    def certificate(self):
        return os.path.join(self.dir, "data", "certificate.pem")

    def ctl(self, *args, check=True):
        r = subprocess.run([STANZACTL, "--config", self.config, *args],
                           capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"stanzactl {args} failed: {r.stderr}")
        return r

    def start(self):
        self.logf = open(self.log, "w")
        self.proc = subprocess.Popen([STANZAD, "--config", self.config],
                                     stdout=self.logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("stanzad exited at start-up:\n" + self.read_log())
            try:
                with socket.create_connection(("127.0.0.1", self.tls_port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("stanzad did not start listening:\n" + self.read_log())

    def read_log(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is not None:
            # It died before we asked: that is a bug worth seeing in the test output.
            print(f"---- stanzad exited by itself (rc={self.proc.returncode}) ----")
            print(self.read_log()[-20000:])
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if exc[0] is not None:
            print("---- stanzad log ----")
            print(self.read_log()[-20000:])
        if not os.environ.get("STANZAD_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


class SharedServer(__import__("unittest").TestCase):
    """Test cases sharing one server, started before the class's first test and stopped after
    its last: SERVER holds the keyword arguments of Server. Tests must not leave state that
    another relies on not being there (sessions of the same resource, messages in flight);
    where they would, start a Server per test instead."""
    SERVER = {}

    @classmethod
    def setUpClass(cls):
        cls.server = Server(**cls.SERVER).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)


# ---- raw XML over TLS ---------------------------------------------------------------------

def client_tls_context(cafile=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Raw:
    """A raw socket client on the direct-TLS port (XEP-0368) or the plain port."""

    def __init__(self, server, tls=True, timeout=10, source=None):
        port = server.tls_port if tls else server.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
        if tls:
            sock = client_tls_context(server.certificate).wrap_socket(sock, server_hostname=HOST)
        self.sock = sock
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def open_stream(self, to=HOST, extra=""):
        self.send(f"<?xml version='1.0'?><stream:stream to='{to}' version='1.0' "
                  f"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'{extra}>")

    def read_while(self, waiting, what, timeout=10):
        """Reads until waiting(buffer) is false; raises naming `what` on time-out or close."""
        deadline = time.monotonic() + timeout
        while waiting(self.buf):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.buf!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError):
                chunk = b""
            if not chunk:
                raise AssertionError(f"connection closed waiting for {what}; got {self.buf!r}")
            self.buf += chunk
        return self.buf.decode(errors="replace")

    def read_until(self, needle, timeout=10):
        """Reads until `needle` (bytes or str) is in the buffer; returns everything read."""
        if isinstance(needle, str):
            needle = needle.encode()
        return self.read_while(lambda buf: needle not in buf, repr(needle), timeout)

    def read_match(self, pattern, timeout=10):
        """Reads until the regex `pattern` matches the buffer; returns the match's text."""
        import re
        found = []

        def waiting(buf):
            m = re.search(pattern, buf.decode(errors="replace"), re.S)
            if m:
                found.append(m.group(0))
            return not m
        self.read_while(waiting, repr(pattern), timeout)
        return found[-1]

    def read_count(self, needle, count, timeout=10):
        """Reads until `needle` occurs `count` times in the buffer; returns the buffer."""
        if isinstance(needle, str):
            needle = needle.encode()
        return self.read_while(lambda buf: buf.count(needle) < count,
                               f"{count} times {needle!r}", timeout)

    def read_iq(self, iq_id, timeout=10):
        """Reads until the iq with this id is complete; returns it."""
        return self.read_match(rf"<iq[^>]*id='{iq_id}'[^>]*(/>|>.*?</iq>)", timeout)

    def read_to_close(self, timeout=10):
        """Reads until the server closes the connection; returns everything read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, ssl.SSLError, OSError):
                return self.buf.decode(errors="replace")
            if not chunk:
                return self.buf.decode(errors="replace")
            self.buf += chunk
        raise AssertionError(f"server did not close the connection; got {self.buf!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def scram_login(raw, user, password, resource="raw", bind=True):
    """Authenticates a Raw client with SCRAM-SHA-256 and binds `resource` (or, bind=False,
    stops after the restarted stream's features: to resume a session instead)."""
    import base64
    import hashlib
    import hmac
    import os as _os
    raw.open_stream()
    raw.read_until("</stream:features>")
    cnonce = base64.b64encode(_os.urandom(12)).decode()
    first_bare = f"n={user},r={cnonce}"
    raw.buf = b""
    raw.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>"
             + base64.b64encode(("n,," + first_bare).encode()).decode() + "</auth>")
    text = raw.read_until("</challenge>")
    challenge = text.split(">", 1)[1].split("<", 1)[0]
    server_first = base64.b64decode(challenge).decode()
    parts = dict(p.split("=", 1) for p in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(parts["s"]),
                                 int(parts["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_bare = f"c=biws,r={parts['r']}"
    auth_message = f"{first_bare},{server_first},{final_bare}".encode()
    signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    final = final_bare + ",p=" + base64.b64encode(proof).decode()
    raw.buf = b""
    raw.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
             + base64.b64encode(final.encode()).decode() + "</response>")
    text = raw.read_until("xmpp-sasl'")
    raw.read_until("</", timeout=10) if "<success" not in text else None
    if "<success" not in raw.buf.decode(errors="replace"):
        raise AssertionError("authentication failed: " + raw.buf.decode(errors="replace"))
    raw.buf = b""
    raw.open_stream()
    raw.features = raw.read_until("</stream:features>")
    raw.buf = b""
    if not bind:
        return
    raw.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             f"<resource>{resource}</resource></bind></iq>")
    raw.read_until("</iq>")
    # Keep whatever came after the bind result in the same read (a plugin's greeting…).
    end = raw.buf.index(b"</iq>") + len(b"</iq>")
    raw.bind_result = raw.buf[:end].decode(errors="replace")
    raw.buf = raw.buf[end:]


# ---- slixmpp -------------------------------------------------------------------------------

def slix_client(server, jid, password, mech="SCRAM-SHA-256", **kw):
    import slixmpp
    c = slixmpp.ClientXMPP(jid, password, sasl_mech=mech, **kw)
    c.ca_certs = server.certificate
    c.enable_direct_tls = False
    return c


def run(coro, timeout=120):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))
    finally:
        loop.close()


def raw_login(server, user, password, resource, online=True):
    """A Raw client logged in as user/resource; with online, after its initial presence came
    back (RFC 6121 §4.2.2), so the router knows the resource is available."""
    raw = Raw(server)
    scram_login(raw, user, password, resource)
    if online:
        raw.send("<presence/>")
        raw.read_until(f"from='{user}@{HOST}/{resource}'")
        raw.buf = b""
    return raw
