-- sdk/examples/lua/mod_hello.lua: a worked example. Answers "hello" sent to the server with
-- "hello, <user> (<n> times)", counting per user in the key-value store, and "where" with the
-- sender's bound resources: listed on the shard that owns the account (module:post carries
-- the request there as this plugin's own event, hello/where).
local st = require "stanzad.stanza";

local greeting = module:get_option_string("hello_greeting", "hello");
local counts = module:open_store("hello");

module:hook("message/host", function(event)
	local msg = event.stanza;
	if msg:get_child_text("body") == "where" then
		local bare = event.from:match("^[^/]*");
		module:post(module:owner_shard(bare), "hello/where", msg);
		return true;
	end
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

-- On the owner shard of the sender: its sessions, one line each.
module:hook("hello/where", function(event)
	local msg = event.stanza;
	local bare = msg.attr.from:match("^[^/]*");
	local lines = {};
	for _, s in ipairs(module:sessions(bare)) do
		lines[#lines + 1] = ("%s %s"):format(s.jid, s.available and "available" or "unavailable");
	end
	module:send(st.message({ from = msg.attr.to, to = msg.attr.from, type = "chat" },
		table.concat(lines, "\n")));
	return true;
end);
