-- lua/mod_register.lua: XEP-0077 In-Band Registration. Off by default: load it to let clients
-- create their own accounts.
--
-- Before authentication (event stream/preauth, after TLS): a get returns the form (username,
-- password), a set creates the account — at most register_max_per_ip accounts per client IP
-- address per register_window_seconds on each shard, passwords of at least
-- register_min_password_length characters. After authentication (stanza/in, to the account
-- or the server): a get says the account is registered, a set with <remove/> removes it with
-- every trace in storage (user/deleted reaches every plugin; the session then ends), a set
-- with the username and a new password changes the password (§3.3).
local st = require "stanzad.stanza";

local xmlns_register = "jabber:iq:register";
local xmlns_stanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";

local min_password = module:get_option_integer("register_min_password_length", 8, 1, 1024);
local max_per_ip = module:get_option_integer("register_max_per_ip", 5, 1, nil);
local window = module:get_option_integer("register_window_seconds", 3600, 1, nil);

module:add_feature(xmlns_register);
module:add_stream_feature("<register xmlns='http://jabber.org/features/iq-register'/>", false);

-- Registrations per client address on this shard: { [ip] = { time, time, ... } }.
local recent = {};

local function allowed(ip)
	local now = os.time();
	local times = recent[ip] or {};
	local kept = {};
	for _, t in ipairs(times) do
		if now - t < window then kept[#kept + 1] = t; end
	end
	recent[ip] = kept;
	return #kept < max_per_ip;
end

local function note(ip)
	local times = recent[ip] or {};
	times[#times + 1] = os.time();
	recent[ip] = times;
end

-- Forgets addresses with nothing recent, so the table stays small.
module:add_timer(window, function()
	local now = os.time();
	for ip, times in pairs(recent) do
		if #times == 0 or now - times[#times] >= window then recent[ip] = nil; end
	end
	return window;
end);

local function error_reply(iq, type, condition, text)
	local r = st.reply(iq);
	r.attr.type = "error";
	r:tag("error", { type = type }):tag(condition, { xmlns = xmlns_stanzas }):up();
	if text then r:text_tag("text", text, { xmlns = xmlns_stanzas }); end
	return r;
end

local function form(iq)
	return st.reply(iq):tag("query", { xmlns = xmlns_register })
		:text_tag("instructions", "Choose a username and a password.")
		:tag("username"):up():tag("password"):up();
end

-- §3.1: the form, or an account. Answers are written to the stream itself: there is no JID
-- to route them to yet.
module:hook("stream/preauth", function(event)
	local iq = event.stanza;
	local query = iq:get_child("query", xmlns_register);
	if not query then return; end
	if iq.attr.type == "get" then
		event:write(form(iq));
		return true;
	end
	if iq.attr.type ~= "set" then return; end
	local username = query:get_child_text("username");
	local password = query:get_child_text("password");
	if not username or username == "" or not password then
		event:write(error_reply(iq, "modify", "not-acceptable", "a username and a password are needed"));
		return true;
	end
	if #password < min_password then
		event:write(error_reply(iq, "modify", "not-acceptable",
			("the password needs at least %d characters"):format(min_password)));
		return true;
	end
	local ip = event.remote_address or "?";
	if not allowed(ip) then
		module:log("info", "registration refused ip=%s reason=rate", ip);
		event:write(error_reply(iq, "wait", "resource-constraint",
			"too many accounts registered from this address; try again later"));
		return true;
	end
	local jid = username .. "@" .. (module.host or event.to);
	local ok, created, why = pcall(module.user_create, module, jid, password);
	if not ok then
		module:log("error", "registration failed jid=%s error=%s", jid, tostring(created));
		event:write(error_reply(iq, "wait", "internal-server-error", "the account could not be stored"));
	elseif created then
		note(ip);
		module:log("info", "registered jid=%s ip=%s", jid, ip);
		event:write(st.reply(iq));
	elseif why == "exists" then
		event:write(error_reply(iq, "cancel", "conflict", "that username is taken"));
	else
		event:write(error_reply(iq, "modify", "jid-malformed", "that username is not valid"));
	end
	return true;
end);

-- §3.2, §3.3: the registered account itself.
module:hook("stanza/in/iq", function(event)
	local iq = event.stanza;
	if iq.name ~= "iq" then return; end
	local query = iq:get_child("query", xmlns_register);
	if not query then return; end
	local bare = event.session_jid:match("^[^/]*");
	local to = iq.attr.to;
	if to and to ~= bare and to ~= module.host then return; end
	if iq.attr.type == "get" then
		event:reply(st.reply(iq):tag("query", { xmlns = xmlns_register })
			:tag("registered"):up():text_tag("username", bare:match("^[^@]*")));
		return true;
	end
	if iq.attr.type ~= "set" then return; end
	if query:get_child("remove") then
		-- The result first, on this very stream: removing the account ends the session.
		event:write(st.reply(iq));
		module:log("info", "unregistered jid=%s", bare);
		module:user_remove(bare);
		return true;
	end
	local username = query:get_child_text("username");
	local password = query:get_child_text("password");
	if username ~= bare:match("^[^@]*") or not password then
		return { type = "modify", condition = "bad-request",
			text = "the username must be yours, with a password" };
	end
	if #password < min_password then
		return { type = "modify", condition = "not-acceptable",
			text = ("the password needs at least %d characters"):format(min_password) };
	end
	module:user_set_password(bare, password);
	module:log("info", "password changed jid=%s", bare);
	event:reply(st.reply(iq));
	return true;
end);
