-- lua/mod_blocking.lua: XEP-0191 Blocking Command: the blocklist (§3.2-§3.5), pushes to the
-- account's interested resources, and enforcement both ways (§3.3: inbound stanzas from a
-- blocked entity, outbound ones to it), with JIDs matched as in XEP-0016 §2.1.
local st = require "stanzad.stanza";
local errors = require "stanzad.errors";
local jid_util = require "stanzad.jid";

local xmlns_blocking = "urn:xmpp:blocking";
local xmlns_errors = "urn:xmpp:blocking:errors";
local xmlns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

-- How long a shard that does not own an account trusts its copy of the account's list
-- (stanza/in runs on the session's shard; every change happens on the owner shard).
local cache_seconds = module:get_option_integer("blocking_cache_seconds", 2, 0, 3600);
-- Lists cached per shard before the cache starts over.
local cache_limit = module:get_option_integer("blocking_cache_entries", 10000, 1);

local store = module:open_store("blocking");

module:add_feature(xmlns_blocking);

-- ---- JIDs ---------------------------------------------------------------------------------

local function split(jid)
	local rest, resource = jid:match("^([^/]*)/(.*)$");
	rest = rest or jid;
	local node, domain = rest:match("^([^@]*)@(.*)$");
	if not node then domain = rest; end
	return node, domain, resource;
end

-- Everything before the first '/' (neither node nor domain may hold one). A plain find, not a
-- pattern: it runs several times for every message.
local function bare_of(jid)
	local slash = jid:find("/", 1, true);
	return slash and jid:sub(1, slash - 1) or jid;
end

-- A JID from an item, prepared as the core prepares the addresses it stamps (stringprep: SDK
-- 1.4), so that it matches event.from; nil when it is not a JID.
local prep = jid_util.prep;

-- Whether `jid` is matched by an item of `set` (XEP-0191 §4 via XEP-0016 §2.1): the full JID,
-- the bare JID, domain/resource, or the domain.
local function matches(set, jid)
	if next(set) == nil then return false; end -- the usual case: nobody blocked, nothing to split
	if set[jid] then return true; end
	local node, domain, resource = split(jid);
	if node and set[node .. "@" .. domain] then return true; end
	if resource and set[domain .. "/" .. resource] then return true; end
	return set[domain] == true;
end

-- ---- the list: storage and this shard's cache -------------------------------------------

-- cache[bare] = { list = { jid, ... } (in blocking order), set = { [jid] = true }, at = time,
-- owned = this shard owns the account (so every change happens here and the copy is exact) }
local cache, cached = {}, 0;
-- dirty[bare] = until when a non-owning shard rereads the list at every use: the account just
-- sent a change from a session here, which its owner shard may not have stored yet.
local dirty = {};

local function entry_of(list)
	local set = {};
	for _, jid in ipairs(list) do set[jid] = true; end
	return { list = list, set = set, at = os.time() };
end

-- Entries are prepared again as they are read: lists stored before SDK 1.4 may hold a JID as
-- the client wrote it ("Ärger@…"), which would match nothing (a duplicate is dropped).
local function load_list(user)
	local value = store:get(user, "list");
	local list, seen = {}, {};
	if value then
		for jid in value:gmatch("[^\n]+") do
			jid = prep(jid) or jid;
			if not seen[jid] then
				seen[jid] = true;
				list[#list + 1] = jid;
			end
		end
	end
	return list;
end

local function remember(user, entry, owned)
	if not cache[user] then
		cached = cached + 1;
		if cached > cache_limit then
			cache, cached = {}, 1;
		end
	end
	entry.owned = owned or (cache[user] and cache[user].owned) or false;
	cache[user] = entry;
	return entry;
end

-- The account's list. `owned`: called from an event that runs on the account's owner shard.
local function list_of(user, owned)
	local entry = cache[user];
	if entry then
		if owned and not entry.owned then entry.owned = true; return entry; end
		local now = os.time();
		if entry.owned then return entry; end
		if now - entry.at < cache_seconds and not (dirty[user] and dirty[user] >= now) then
			return entry;
		end
	end
	if dirty[user] and dirty[user] < os.time() then dirty[user] = nil; end
	return remember(user, entry_of(load_list(user)), owned);
end

local function save_list(user, list)
	store:set(user, "list", #list > 0 and table.concat(list, "\n") or nil);
	return remember(user, entry_of(list), true);
end

-- ---- pushes (§3.3: to the account's resources that asked for the list) ------------------

-- interested[bare] = { [full JID] = true }, on the owner shard: every blocklist get runs there.
local interested = {};
local push_id = 0;

local function push(user, action, jids)
	local resources = interested[user];
	if not resources then return; end
	for full in pairs(resources) do
		push_id = push_id + 1;
		local iq = st.iq({ type = "set", id = ("blocking-push-%d"):format(push_id), from = user, to = full })
			:tag(action, { xmlns = xmlns_blocking });
		for _, jid in ipairs(jids) do
			iq:tag("item", { jid = jid }):up();
		end
		module:send(iq);
	end
end

-- ---- the protocol ----------------------------------------------------------------------

local function own_account(event)
	local user = bare_of(event.to);
	if bare_of(event.from) ~= user then
		return nil, errors.new("cancel", "forbidden", "a blocklist belongs to its account only");
	end
	return user;
end

module:hook("iq-get/bare/urn:xmpp:blocking:blocklist", function(event)
	local user, err = own_account(event);
	if not user then return err; end
	local entry = list_of(user, true);
	local reply = st.reply(event.stanza):tag("blocklist", { xmlns = xmlns_blocking });
	for _, jid in ipairs(entry.list) do
		reply:tag("item", { jid = jid }):up();
	end
	interested[user] = interested[user] or {};
	interested[user][event.from] = true;
	event:reply(reply);
	return true;
end);

-- The items' JIDs, normalized; or an error object.
local function items_of(command)
	local jids = {};
	for item in command:childtags("item", xmlns_blocking) do
		local jid = prep(item.attr.jid);
		if not jid then
			return nil, errors.new("modify", "jid-malformed", "not a JID: " .. tostring(item.attr.jid));
		end
		jids[#jids + 1] = jid;
	end
	return jids;
end

module:hook("iq-set/bare/urn:xmpp:blocking:block", function(event)
	local user, err = own_account(event);
	if not user then return err; end
	local jids, bad = items_of(event.stanza:get_child("block", xmlns_blocking));
	if not jids then return bad; end
	if #jids == 0 then
		return errors.new("modify", "bad-request", "block needs at least one item");
	end
	local entry = list_of(user, true);
	local list, set = {}, {};
	for i, jid in ipairs(entry.list) do
		list[i], set[jid] = jid, true;
	end
	for _, jid in ipairs(jids) do
		if not set[jid] then
			set[jid] = true;
			list[#list + 1] = jid;
		end
	end
	save_list(user, list);
	module:log("debug", "blocked jid=%s items=%d", user, #jids);
	event:reply(st.reply(event.stanza));
	push(user, "block", jids);
	return true;
end);

module:hook("iq-set/bare/urn:xmpp:blocking:unblock", function(event)
	local user, err = own_account(event);
	if not user then return err; end
	local jids, bad = items_of(event.stanza:get_child("unblock", xmlns_blocking));
	if not jids then return bad; end
	local list = {};
	if #jids > 0 then -- §3.4; no item unblocks everyone (§3.5)
		local drop = {};
		for _, jid in ipairs(jids) do drop[jid] = true; end
		for _, jid in ipairs(list_of(user, true).list) do
			if not drop[jid] then list[#list + 1] = jid; end
		end
	end
	save_list(user, list);
	module:log("debug", "unblocked jid=%s items=%d", user, #jids);
	event:reply(st.reply(event.stanza));
	push(user, "unblock", jids);
	return true;
end);

-- A push a resource did not take (it went away on another shard): stop pushing to it.
module:hook("iq/bare", function(event)
	local stanza = event.stanza;
	if stanza.attr.type ~= "error" or not (stanza.attr.id or ""):match("^blocking%-push%-") then
		return;
	end
	local resources = interested[bare_of(event.to)];
	if resources and event.from then resources[event.from] = nil; end
	return true;
end);

module:hook("session/closed", function(event)
	-- Only seen here when this shard also owns the account; see the iq/bare hook otherwise.
	local full = event.session_jid or event.from;
	local resources = full and interested[bare_of(full)];
	if resources then resources[full] = nil; end
end);

-- ---- enforcement ---------------------------------------------------------------------------

local function blocked_marker(stanza)
	local err = stanza:get_child("error");
	return err and err:get_child("blocked", xmlns_errors) or nil;
end

-- §3.3, inbound: nothing from a blocked entity reaches the account. Presence and errors vanish
-- silently; message and iq get/set are answered service-unavailable, as if the account were
-- offline. Runs on the recipient's owner shard, so the list is exact.
local function guard_inbound(event)
	local to = event.to;
	if not to then return; end
	local user = bare_of(to);
	local set = list_of(user, true).set;
	local stanza = event.stanza;
	local kind = stanza.name;
	-- The usual case, a recipient who blocks nobody, decided with as little Lua as possible.
	if kind ~= "presence" and next(set) == nil then return; end
	local from = event.from;
	if not from or bare_of(from) == user then return; end
	local stype = stanza.attr.type;
	if matches(set, from) then
		if stype == "error" then
			-- Our own bounce of the account's outbound stanza (see guard_outbound) passes.
			if blocked_marker(stanza) then return; end
			return true;
		end
		if kind == "presence" then return true; end
		if kind == "message" then
			if stype == "groupchat" or stype == "headline" then return true; end
			return errors.new("cancel", "service-unavailable");
		end
		if stype == "get" or stype == "set" then
			return errors.new("cancel", "service-unavailable");
		end
		return true; -- iq result
	end
	-- A local sender who blocked the recipient appears offline to it: no presence.
	if kind == "presence" and module:is_local_host(select(2, split(from))) then
		if matches(list_of(bare_of(from), false).set, to) then return true; end
	end
end

for _, name in ipairs({ "message/bare", "message/full", "presence/bare", "presence/full",
	"iq/bare", "iq/full" }) do
	module:hook(name, guard_inbound, module.priority.guard);
end

-- §3.3, outbound: the account's stanza to a blocked entity is refused with not-acceptable and
-- <blocked xmlns='urn:xmpp:blocking:errors'/>. Runs on the session's shard.
local function guard_outbound(event)
	local stanza, from = event.stanza, event.from;
	if not stanza or not from then return; end
	local user = bare_of(from);
	if stanza.attr.type == "error" and blocked_marker(stanza) then
		-- Only the server says "blocked": a client's copy would slip past guard_inbound.
		stanza:get_child("error"):remove_children("blocked", xmlns_errors);
	end
	local to = event.to;
	if not to then return; end
	local set = list_of(user, false).set;
	if next(set) == nil then return; end -- nobody blocked: nothing to check
	local _, domain = split(to);
	if bare_of(to) == user or to == domain and module:is_local_host(domain) then return; end
	if not matches(set, to) then return; end
	if stanza.attr.type == "error" then return true; end -- never an error to an error
	local reply = st.reply(stanza);
	reply.attr.type = "error";
	reply:tag("error", { type = "cancel" })
		:tag("not-acceptable", { xmlns = xmlns_stanzas }):up()
		:tag("blocked", { xmlns = xmlns_errors }):up();
	event:reply(reply);
	return true;
end

module:hook("stanza/in", guard_outbound, module.priority.guard);

-- A push passing to one of the account's sessions: this shard's copy of the list is old.
module:hook("stanza/out/iq", function(event)
	local stanza = event.stanza;
	if stanza.name ~= "iq" or stanza.attr.type ~= "set" then return; end
	if not (stanza:get_child("block", xmlns_blocking) or stanza:get_child("unblock", xmlns_blocking)) then
		return;
	end
	local user = stanza.attr.from;
	local entry = user and cache[user];
	if entry and not entry.owned then entry.at = -math.huge; end
end);

-- The account's own block/unblock leaving one of its sessions: until the owner shard has
-- stored it, this shard rereads the list rather than trust its copy.
module:hook("stanza/in/iq", function(event)
	local stanza = event.stanza;
	if stanza.name ~= "iq" or stanza.attr.type ~= "set" or not event.from then return; end
	if stanza:get_child("block", xmlns_blocking) or stanza:get_child("unblock", xmlns_blocking) then
		local user = bare_of(event.from);
		local entry = cache[user];
		if not (entry and entry.owned) then dirty[user] = os.time() + cache_seconds; end
	end
end, module.priority.guard + 1); -- before guard_outbound, which reads the list
