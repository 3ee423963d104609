-- sdk/examples/lua/mod_hello.lua: a worked example. Answers "hello" sent to the server with
-- "hello, <user> (<n> times)", counting per user in the key-value store.
local st = require "stanzad.stanza";

local greeting = module:get_option_string("hello_greeting", "hello");
local counts = module:open_store("hello");

module:hook("message/host", function(event)
	local msg = event.stanza;
	if msg:get_child_text("body") ~= "hello" then
		return; -- not ours: pass
	end
	local user = event.from or msg.attr.from;
	local bare = user:match("^[^/]*");
	local n = tonumber(counts:get(bare, "count") or "0") + 1;
	counts:set(bare, "count", tostring(n));
	module:log("debug", "hello jid=%s count=%d", bare, n);
	event:reply(st.message({ type = "chat" }, ("%s, %s (%d times)"):format(greeting, bare, n)));
	return true;
end);
