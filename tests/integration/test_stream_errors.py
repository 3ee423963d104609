"""Raw XML over TLS: each RFC 6120 §4.9 stream error stanzad raises, and a wrong password."""
import base64
import unittest

from harness import HOST, Raw, SharedServer, scram_login

STREAM_NS = "xmlns='urn:ietf:params:xml:ns:xmpp-streams'"


class StreamErrors(SharedServer):
    SERVER = dict(users=[("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")],
                  limits="max-stanza-size='10000' max-depth='32'")

    def expect_stream_error(self, raw, condition):
        text = raw.read_to_close()
        self.assertIn(f"<{condition} {STREAM_NS}/>", text)
        self.assertTrue(text.rstrip().endswith("</stream:stream>"), text)
        raw.close()
        return text

    def opened(self):
        raw = Raw(self.server)
        raw.open_stream()
        raw.read_until("</stream:features>")
        return raw

    def test_not_well_formed(self):
        raw = self.opened()
        raw.send("<message><body>mismatched</message>")
        self.expect_stream_error(raw, "not-well-formed")

    def test_invalid_utf8_is_not_well_formed(self):
        raw = self.opened()
        raw.send(b"<message><body>\xff\xfe</body></message>")
        self.expect_stream_error(raw, "not-well-formed")

    def test_dtd_is_restricted_xml(self):
        raw = Raw(self.server)
        raw.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>"
                 "<!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>]>"
                 "<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.expect_stream_error(raw, "restricted-xml")

    def test_comment_is_restricted_xml(self):
        raw = self.opened()
        raw.send("<!-- a comment -->")
        self.expect_stream_error(raw, "restricted-xml")

    def test_processing_instruction_is_restricted_xml(self):
        raw = self.opened()
        raw.send("<?evil instruction?>")
        self.expect_stream_error(raw, "restricted-xml")

    def test_oversized_stanza_is_policy_violation(self):
        raw = self.opened()
        raw.send("<message><body>" + "x" * 20000 + "</body></message>")
        self.expect_stream_error(raw, "policy-violation")

    def test_deep_nesting_is_policy_violation(self):
        raw = self.opened()
        raw.send("<a>" * 10000)
        self.expect_stream_error(raw, "policy-violation")

    def test_wrong_content_namespace_is_invalid_namespace(self):
        raw = Raw(self.server)
        raw.send("<stream:stream to='localhost' version='1.0' xmlns='jabber:server' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.expect_stream_error(raw, "invalid-namespace")

    def test_wrong_stream_namespace_is_invalid_namespace(self):
        raw = Raw(self.server)
        raw.send("<stream:stream to='localhost' version='1.0' xmlns='jabber:client' "
                 "xmlns:stream='http://example.com/not-streams'>")
        self.expect_stream_error(raw, "invalid-namespace")

    def test_unknown_host_is_host_unknown(self):
        raw = Raw(self.server)
        raw.open_stream(to="example.org")
        self.expect_stream_error(raw, "host-unknown")

    def test_missing_to_is_host_unknown(self):
        raw = Raw(self.server)
        raw.send("<stream:stream version='1.0' xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams'>")
        self.expect_stream_error(raw, "host-unknown")

    def test_old_version_is_unsupported_version(self):
        for version in ("0.9", "2.0"):
            raw = Raw(self.server)
            raw.send(f"<stream:stream to='localhost' version='{version}' xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams'>")
            self.expect_stream_error(raw, "unsupported-version")

    def test_stanza_before_authentication_is_not_authorized(self):
        raw = self.opened()
        raw.send("<message to='juliet@localhost'><body>hi</body></message>")
        self.expect_stream_error(raw, "not-authorized")

    def test_wrong_password_is_not_authorized(self):
        raw = self.opened()
        raw.buf = b""
        token = base64.b64encode(b"\0romeo\0wrong-password").decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        text = raw.read_until("</failure>")
        self.assertIn("<not-authorized/>", text)
        # The stream survives: the right password still works on the same connection.
        raw.buf = b""
        token = base64.b64encode(b"\0romeo\0r0meo-secret").decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        self.assertIn("<success", raw.read_until("xmpp-sasl'/>"))
        raw.close()

    def test_wrong_scram_password_is_not_authorized(self):
        raw = Raw(self.server)
        with self.assertRaises(AssertionError) as ctx:
            scram_login(raw, "romeo", "not-the-password")
        self.assertIn("<not-authorized/>", str(ctx.exception))
        raw.close()

    def test_unknown_user_is_not_authorized(self):
        raw = Raw(self.server)
        with self.assertRaises(AssertionError) as ctx:
            scram_login(raw, "nobody", "whatever")
        self.assertIn("<not-authorized/>", str(ctx.exception))
        raw.close()

    def test_plain_port_requires_starttls(self):
        raw = Raw(self.server, tls=False)
        raw.open_stream()
        text = raw.read_until("</stream:features>")
        self.assertIn("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>",
                      text)
        self.assertNotIn("PLAIN", text)
        raw.buf = b""
        token = base64.b64encode(b"\0romeo\0r0meo-secret").decode()
        raw.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        self.assertIn("<encryption-required/>", raw.read_until("</failure>"))
        raw.close()

    def test_spoofed_from_is_invalid_from(self):
        raw = Raw(self.server)
        scram_login(raw, "romeo", "r0meo-secret")
        raw.send("<message from='juliet@localhost/balcony' to='romeo@localhost'>"
                 "<body>forged</body></message>")
        self.expect_stream_error(raw, "invalid-from")

    def test_bad_jid_is_jid_malformed_and_stream_survives(self):
        raw = Raw(self.server)
        scram_login(raw, "romeo", "r0meo-secret")
        raw.send("<message id='m1' to='juliet@@localhost'><body>hi</body></message>")
        text = raw.read_until("</message>")
        self.assertIn("type='error'", text)
        self.assertIn("<jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>", text)
        raw.buf = b""
        raw.send("<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertIn("id='p1'", raw.read_until("</iq>"))
        raw.close()

    def test_non_stanza_after_binding_is_unsupported_stanza_type(self):
        raw = Raw(self.server)
        scram_login(raw, "romeo", "r0meo-secret")
        raw.send("<foo xmlns='urn:example:foo'/>")
        self.expect_stream_error(raw, "unsupported-stanza-type")


if __name__ == "__main__":
    unittest.main(verbosity=2)
