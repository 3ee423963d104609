-- lua/mod_time.lua: XEP-0202 Entity Time, answering <time xmlns='urn:xmpp:time'/> to the server.
local st = require "stanzad.stanza";

local xmlns_time = "urn:xmpp:time";

module:add_feature(xmlns_time);

-- The local offset from UTC as "+hh:mm" / "-hh:mm" (XEP-0082 TZD).
local function tzo(now)
	local utc = os.date("!*t", now);
	utc.isdst = os.date("*t", now).isdst; -- read the UTC wall clock as local time, DST included
	local offset = os.difftime(now, os.time(utc));
	local sign = offset < 0 and "-" or "+";
	offset = math.abs(offset) // 60;
	return ("%s%02d:%02d"):format(sign, offset // 60, offset % 60);
end

module:hook("iq-get/host/urn:xmpp:time:time", function(event)
	local now = os.time();
	local reply = st.reply(event.stanza)
		:tag("time", { xmlns = xmlns_time })
			:text_tag("tzo", tzo(now))
			:text_tag("utc", os.date("!%Y-%m-%dT%H:%M:%SZ", now));
	event:reply(reply);
	return true;
end);
