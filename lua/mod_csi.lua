-- lua/mod_csi.lua: XEP-0352 Client State Indication: while a client says it is <inactive/>,
-- traffic it does not need at once (presence, chat states, receipts…) is held, in order, and
-- written before the next stanza that matters, or when the client becomes <active/> again
-- (the rules of Prosody's mod_csi_simple).
local xmlns_csi = "urn:xmpp:csi:0";
local xmlns_carbons = "urn:xmpp:carbons:2";
local xmlns_forward = "urn:xmpp:forward:0";

-- Stanzas held for one session; the next one is written with them all.
local max_held = module:get_option_integer("csi_max_held", 100, 1, 100000);

module:add_stream_feature("<csi xmlns='urn:xmpp:csi:0'/>", true);

-- Per session, on its shard (stream/element, stanza/out and session events all run there):
-- full JID -> list of held stanzas (our copies), present only while the client is inactive.
local inactive = {};

-- Payloads (namespace) that make a message without a body worth waking the client for.
local important_payloads = {
	["urn:xmpp:eme:0"] = true,              -- encrypted: it may be anything
	["jabber:x:conference"] = true,         -- XEP-0249 invitation
	["urn:xmpp:jingle-message:0"] = true,   -- a call
	["urn:xmpp:jingle-message:1"] = true,
	["eu.siacs.conversations.axolotl"] = true, -- OMEMO
};

local function forwarded_message(stanza)
	for _, name in ipairs({ "sent", "received" }) do
		local wrapper = stanza:get_child(name, xmlns_carbons);
		if wrapper then
			local forwarded = wrapper:get_child("forwarded", xmlns_forward);
			local inner = forwarded and forwarded:get_child("message", "jabber:client");
			if inner then return inner; end
		end
	end
	return stanza;
end

-- Whether the client needs `stanza` now (mod_csi_simple's is_important).
local function is_important(stanza)
	local name, stype = stanza.name, stanza.attr.type;
	if name == "iq" then return true; end
	if name == "presence" then
		-- Available and unavailable presence is state: the latest counts. Subscription
		-- requests and errors are not.
		return not (stype == nil or stype == "unavailable");
	end
	if name ~= "message" then return true; end
	if stype == "headline" then return false; end    -- ephemeral by definition
	if stype == "error" then return true; end        -- a delivery failure
	local msg = forwarded_message(stanza);           -- a carbon matters as its content does
	if msg:get_child("body") or msg:get_child("subject") then return true; end
	for child in msg:children() do
		if important_payloads[child.attr.xmlns] then return true; end
		if child.name == "x" and child.attr.xmlns == "http://jabber.org/protocol/muc#user"
			and child:get_child("invite") then
			return true;
		end
	end
	return false;
end

-- Writes what is held, oldest first, straight to the session (not through stanza/out again).
local function flush(event, held)
	for i = 1, #held do
		event:write(held[i]);
		held[i] = nil;
	end
end

module:hook("stream/element", function(event)
	local el = event.stanza;
	if el.attr.xmlns ~= xmlns_csi then return; end
	local jid = event.session_jid;
	if el.name == "inactive" then
		inactive[jid] = inactive[jid] or {};
		module:log("debug", "csi inactive jid=%s", jid);
	elseif el.name == "active" then
		local held = inactive[jid];
		inactive[jid] = nil;
		if held then
			module:log("debug", "csi active jid=%s flushed=%d", jid, #held);
			flush(event, held);
		end
	else
		return; -- not ours: the stream ends with unsupported-stanza-type
	end
	return true;
end);

-- After the handlers that rewrite or drop what goes out (normal and above), before the core
-- writes it: what is held is what the client would have seen.
module:hook("stanza/out", function(event)
	local held = inactive[event.session_jid];
	if not held then return; end
	local stanza = event.stanza;
	if is_important(stanza) or #held >= max_held then
		-- Everything held goes first, so the client sees the stream in its order.
		flush(event, held);
		return;
	end
	held[#held + 1] = stanza:copy();
	return true;
end, -500);

-- What was held when a session ends: presence is state and is sent again to whoever comes
-- back (probes); a message is never lost: it is routed again, as if it arrived just now
-- (another resource, the offline store, or an error to its sender). Carbon copies are copies.
local function release(held)
	for _, stanza in ipairs(held) do
		if stanza.name == "message" and stanza.attr.from and stanza.attr.to
			and not stanza:get_child("sent", xmlns_carbons)
			and not stanza:get_child("received", xmlns_carbons) then
			module:send(stanza);
		end
	end
end

module:hook("session/closed", function(event)
	local jid = event.session_jid or event.from;
	local held = inactive[jid];
	inactive[jid] = nil;
	if held and #held > 0 then
		module:log("debug", "csi session closed jid=%s held=%d", jid, #held);
		release(held);
	end
end);

-- XEP-0198 resumption: the stream starts active (a new stream has no client state). What the
-- old connection held is written now if it was on this shard; another shard hands its held
-- stanzas back to the router, which brings them here.
module:hook("session/resumed", function(event)
	local jid = event.session_jid or event.from;
	local held = inactive[jid];
	inactive[jid] = nil;
	if held then flush(event, held); end
	local marker = require("stanzad.stanza").stanza("moved", { xmlns = xmlns_csi, jid = jid });
	for shard = 0, module.shards - 1 do
		if shard ~= module.shard then module:post(shard, "csi/moved", marker); end
	end
end);

module:hook("csi/moved", function(event)
	local jid = event.stanza.attr.jid;
	local held = inactive[jid];
	inactive[jid] = nil;
	if not held then return; end
	for _, stanza in ipairs(held) do
		if stanza.attr.from and stanza.attr.to then module:send(stanza); end
	end
	return true;
end);
