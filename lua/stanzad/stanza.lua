-- lua/stanzad/stanza.lua: the stanza builder and navigation for Lua plugins (like Prosody's
-- util.stanza), over the native stanza object of the plugin C ABI (RFC 6120 §8).
--
-- A stanza object wraps an element. One you build (st.stanza, st.message, st:copy()...) is
-- yours: it is freed when collected, unless you hand it to module:send or event:reply, which
-- take it (using it afterwards raises an error; send a :copy() to keep one).
-- event.stanza is borrowed: valid only while the handler runs.
local native = require "stanzad.native";

local st = {};

st.stanza = native.stanza;
st.is_stanza = native.is_stanza;
-- parse(xml) -> stanza | nil, error
st.parse = native.parse;
st.deserialize = native.parse;

local xmlns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

function st.message(attrs, body)
	local m = native.stanza("message", attrs);
	if body then
		m:text_tag("body", body);
	end
	return m;
end

function st.iq(attrs)
	return native.stanza("iq", attrs);
end

function st.presence(attrs)
	return native.stanza("presence", attrs);
end

-- The reply to orig: addresses swapped, same id; an iq get/set becomes a result.
function st.reply(orig)
	local attr = orig.attr;
	local type = attr.type;
	if orig.name == "iq" and (type == "get" or type == "set") then
		type = "result";
	end
	return native.stanza(orig.name, { to = attr.from, from = attr.to, id = attr.id, type = type });
end

-- The error reply to orig (RFC 6120 §8.3): type ("cancel", "modify", "auth", "wait"),
-- a defined condition and an optional text. `type` may also be an error object from
-- stanzad.errors.
function st.error_reply(orig, type, condition, text)
	if _G.type(type) == "table" then
		type, condition, text = type.type, type.condition, type.text;
	end
	local r = st.reply(orig);
	r.attr.type = "error";
	r:tag("error", { type = type or "cancel" })
		:tag(condition or "undefined-condition", { xmlns = xmlns_stanzas }):up();
	if text then
		r:text_tag("text", text, { xmlns = xmlns_stanzas });
	end
	return r:up();
end

return st;
