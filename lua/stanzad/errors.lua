-- lua/stanzad/errors.lua: stanza error objects (RFC 6120 §8.3) for Lua plugins.
--
-- A handler that returns (or raises with error()) one of these makes the core bounce that
-- error to the sender:  return errors.new("modify", "policy-violation", "body too long")
local errors = {};

local error_mt = {};
error_mt.__index = error_mt;

function error_mt:__tostring()
	if self.text then
		return ("%s/%s: %s"):format(self.type or "cancel", self.condition, self.text);
	end
	return ("%s/%s"):format(self.type or "cancel", self.condition);
end

-- new(type, condition, text, payload) or new{ type = , condition = , text = , payload = }.
-- type: "cancel", "modify", "auth", "wait" or "continue" (nil: the condition's usual one).
-- payload: an application-specific stanza (or a list of them) that goes inside <error/> after
-- the condition, e.g. stanza.stanza("blocked", { xmlns = "urn:xmpp:blocking:errors" }).
function errors.new(type, condition, text, payload)
	if _G.type(type) == "table" then
		return setmetatable({ type = type.type, condition = type.condition or "undefined-condition",
			text = type.text, payload = type.payload }, error_mt);
	end
	if _G.type(condition) ~= "string" then
		error("errors.new(type, condition, text, payload): condition must be a string", 2);
	end
	return setmetatable({ type = type, condition = condition, text = text, payload = payload },
		error_mt);
end

function errors.is_error(e)
	return getmetatable(e) == error_mt;
end

return errors;
