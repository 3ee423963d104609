-- lua/mod_private.lua: XEP-0049 Private XML Storage (jabber:iq:private), one stored element per
-- (namespace, name) of the account, readable and writable by the account only (§2.3, §4).
local st = require "stanzad.stanza";
local errors = require "stanzad.errors";

local xmlns_private = "jabber:iq:private";

local store = module:open_store("private");

module:add_feature(xmlns_private);

-- Namespaces a client may not store under (XEP-0049 §2.3 "reserved"): the stream's own and
-- this protocol's. Other jabber:* namespaces stay allowed: clients do use some.
local reserved = {
	["jabber:client"] = true,
	["jabber:server"] = true,
	["jabber:iq:private"] = true,
};

local function bare_of(jid)
	return (jid:match("^[^/]*"));
end

-- The storage key of an element: Clark notation, "{namespace}name".
local function key_of(el)
	return ("{%s}%s"):format(el.attr.xmlns or "", el.name);
end

local function is_empty(el)
	for _ in el:children() do
		return false;
	end
	return (el:get_text() or "") == "";
end

-- Checks the common rules; returns the account's bare JID and the query, or an error object.
local function account_query(event)
	local user = bare_of(event.to);
	if bare_of(event.from) ~= user then
		return nil, errors.new("cancel", "forbidden", "private XML belongs to its account only");
	end
	return user, event.stanza:get_child("query", xmlns_private);
end

module:hook("iq-get/bare/jabber:iq:private:query", function(event)
	local user, query = account_query(event);
	if not user then return query; end
	local wanted, count = nil, 0;
	for child in query:children() do
		wanted, count = child, count + 1;
	end
	if count == 0 then
		return errors.new("modify", "bad-request", "name the element to retrieve");
	end
	if count > 1 then
		return errors.new("modify", "bad-request", "one element per request");
	end
	if reserved[wanted.attr.xmlns or ""] then
		return errors.new("modify", "not-acceptable", "reserved namespace");
	end
	local reply = st.reply(event.stanza):tag("query", { xmlns = xmlns_private });
	local stored = store:get(user, key_of(wanted));
	local element = stored and st.parse(stored);
	if element then
		reply:add_child(element);
	else
		reply:add_child(st.stanza(wanted.name, { xmlns = wanted.attr.xmlns }));
	end
	event:reply(reply);
	return true;
end);

module:hook("iq-set/bare/jabber:iq:private:query", function(event)
	local user, query = account_query(event);
	if not user then return query; end
	local elements = {};
	for child in query:children() do
		if reserved[child.attr.xmlns or ""] then
			return errors.new("modify", "not-acceptable", "reserved namespace");
		end
		elements[#elements + 1] = child;
	end
	if #elements == 0 then
		return errors.new("modify", "not-acceptable", "nothing to store");
	end
	-- An empty element clears what was stored under its name: a later get answers it empty.
	for _, el in ipairs(elements) do
		store:set(user, key_of(el), not is_empty(el) and tostring(el) or nil);
	end
	module:log("debug", "private xml stored jid=%s elements=%d", user, #elements);
	event:reply(st.reply(event.stanza));
	return true;
end);
