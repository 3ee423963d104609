"""Romeo and Juliet log in with real slixmpp clients (STARTTLS + SCRAM-SHA-256) and chat."""
import asyncio
import unittest

from harness import HOST, Server, slix_client

USERS = [("romeo", "r0meo-secret"), ("juliet", "jul1et-secret")]


async def login(server, jid, password, mech="SCRAM-SHA-256"):
    client = slix_client(server, jid, password, mech=mech)
    started = asyncio.get_running_loop().create_future()
    client.add_event_handler("session_start", lambda _: started.done() or started.set_result(True))
    client.add_event_handler("failed_auth", lambda _: started.done() or started.set_exception(
        AssertionError(f"{jid}: authentication failed")))
    client.connect(("127.0.0.1", server.port))
    await asyncio.wait_for(started, 20)
    client.inbox = asyncio.Queue()
    client.add_event_handler("message", lambda m: client.inbox.put_nowait(m))
    return client


async def go_online(client):
    """Sends initial presence and waits for the server's echo (RFC 6121 §4.2.2), after which
    the router knows the resource is available."""
    echoed = asyncio.get_running_loop().create_future()

    def on_presence(p):
        if p["from"] == client.boundjid and not echoed.done():
            echoed.set_result(True)
    client.add_event_handler("presence_available", on_presence)
    client.send_presence()
    await asyncio.wait_for(echoed, 10)
    client.del_event_handler("presence_available", on_presence)


class Chat(unittest.TestCase):
    def test_romeo_and_juliet_chat_both_ways(self):
        with Server(users=USERS) as server:
            async def scenario():
                romeo = await login(server, f"romeo@{HOST}/orchard", "r0meo-secret")
                juliet = await login(server, f"juliet@{HOST}/balcony", "jul1et-secret")
                # The session really is TLS and the mechanism really is SCRAM-SHA-256.
                self.assertEqual(romeo["feature_mechanisms"].mech.name, "SCRAM-SHA-256")
                tls = romeo.transport.get_extra_info("ssl_object")
                self.assertIn(tls.version(), ("TLSv1.2", "TLSv1.3"))
                self.assertEqual(str(romeo.boundjid), f"romeo@{HOST}/orchard")

                await go_online(romeo)
                await go_online(juliet)
                romeo.send_message(mto=f"juliet@{HOST}", mbody="But soft, what light", mtype="chat")
                msg = await asyncio.wait_for(juliet.inbox.get(), 10)
                self.assertEqual(msg["body"], "But soft, what light")
                self.assertEqual(str(msg["from"]), f"romeo@{HOST}/orchard")
                self.assertEqual(msg["type"], "chat")

                juliet.send_message(mto=msg["from"], mbody="Wherefore art thou", mtype="chat")
                reply = await asyncio.wait_for(romeo.inbox.get(), 10)
                self.assertEqual(reply["body"], "Wherefore art thou")
                self.assertEqual(str(reply["from"]), f"juliet@{HOST}/balcony")
                self.assertEqual(str(reply["to"]), f"romeo@{HOST}/orchard")

                for c in (romeo, juliet):
                    c.disconnect()
            asyncio.run(asyncio.wait_for(scenario(), 60))

    def test_thousand_messages_arrive_complete_and_in_order(self):
        with Server(users=USERS) as server:
            async def scenario():
                romeo = await login(server, f"romeo@{HOST}/orchard", "r0meo-secret")
                juliet = await login(server, f"juliet@{HOST}/balcony", "jul1et-secret")
                await go_online(juliet)
                count = 1000
                for i in range(count):
                    romeo.send_message(mto=f"juliet@{HOST}", mbody=f"line {i}", mtype="chat")
                received = []
                while len(received) < count:
                    msg = await asyncio.wait_for(juliet.inbox.get(), 20)
                    received.append(msg["body"])
                self.assertEqual(received, [f"line {i}" for i in range(count)])
                for c in (romeo, juliet):
                    c.disconnect()
            asyncio.run(asyncio.wait_for(scenario(), 120))

    def test_scram_sha1_and_plain_log_in_too(self):
        with Server(users=USERS) as server:
            async def scenario():
                for mech in ("SCRAM-SHA-1", "PLAIN"):
                    c = await login(server, f"romeo@{HOST}/{mech}", "r0meo-secret", mech=mech)
                    self.assertEqual(c["feature_mechanisms"].mech.name, mech)
                    c.disconnect()
            asyncio.run(asyncio.wait_for(scenario(), 60))

    def test_message_to_offline_user_bounces_service_unavailable(self):
        with Server(users=USERS) as server:
            async def scenario():
                romeo = await login(server, f"romeo@{HOST}/orchard", "r0meo-secret")
                romeo.send_message(mto=f"juliet@{HOST}", mbody="are you there", mtype="chat")
                msg = await asyncio.wait_for(romeo.inbox.get(), 10)
                self.assertEqual(msg["type"], "error")
                self.assertEqual(msg["error"]["condition"], "service-unavailable")
                self.assertEqual(str(msg["from"]), f"juliet@{HOST}")
                romeo.disconnect()
            asyncio.run(asyncio.wait_for(scenario(), 60))


class SecondServer(unittest.TestCase):
    def test_a_second_server_on_the_same_ports_refuses_to_start(self):
        # SO_REUSEPORT would otherwise let it share the ports and split the clients.
        import subprocess
        from harness import STANZAD
        with Server(users=USERS) as server:
            r = subprocess.run([STANZAD, "--config", server.config], capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(1, r.returncode)
            self.assertIn("Address already in use", r.stdout + r.stderr)
            self.assertIsNone(server.proc.poll())  # the first one still serves


if __name__ == "__main__":
    unittest.main(verbosity=2)
