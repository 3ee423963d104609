-- lua/mod_body_limit.lua: refuse messages whose body is too long.
local errors = require "stanzad.errors";

local max_chars = module:get_option_integer("body_limit_max_chars", 10000, 1);

local function check_body(event)
	local body = event.stanza:get_child_text("body");
	local chars = body and utf8.len(body) or 0;
	if chars > max_chars then
		module:log("debug", "body refused chars=%d from=%s", chars, event.stanza.attr.from);
		return errors.new("modify", "policy-violation", "message body too long");
	end
	-- nothing means pass; true means handled
end

module:hook("message/bare", check_body, module.priority.guard);
module:hook("message/full", check_body, module.priority.guard);
