// Hook registry: ordering, stop semantics, errors, host filters, changes during dispatch.
#include "plugin/hooks.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace stanzad::plugin {
namespace {

struct Recorder {
  std::vector<std::string>* trace;
  std::string label;
  sz_verdict verdict = SZ_PASS;
  HookRegistry* registry = nullptr;  // for handlers that change the registry mid-run
};

sz_verdict record(sz_event* e, void* user) {
  auto* r = static_cast<Recorder*>(user);
  r->trace->push_back(r->label);
  if (r->verdict == SZ_ERROR) {
    Event* ev = from_c(e);
    ev->error_condition = r->label == "silent" ? "" : "not-allowed";
  }
  return r->verdict;
}

Handler handler(Recorder& r, std::int32_t priority, std::uint64_t owner = 1,
                std::string host = {}) {
  return Handler{priority, 0, owner, std::move(host), &record, &r, {}};
}

class HooksTest : public ::testing::Test {
 protected:
  sz_verdict fire(std::string_view name, std::string_view host = "example.org") {
    Event ev;
    ev.name = name;
    ev.host = host;
    sz_verdict v = registry.fire(ev);
    condition = ev.error_condition;
    return v;
  }
  HookRegistry registry;
  std::vector<std::string> trace;
  std::string condition;
};

TEST_F(HooksTest, HigherPriorityRunsFirstAndTiesRunInRegistrationOrder) {
  Recorder low{&trace, "low"}, high{&trace, "high"}, tie1{&trace, "tie1"}, tie2{&trace, "tie2"};
  registry.add("message/bare", handler(low, -5));
  registry.add("message/bare", handler(tie1, 0));
  registry.add("message/bare", handler(high, 1000));
  registry.add("message/bare", handler(tie2, 0));
  EXPECT_EQ(SZ_PASS, fire("message/bare"));
  EXPECT_EQ((std::vector<std::string>{"high", "tie1", "tie2", "low"}), trace);
}

TEST_F(HooksTest, HandledStopsTheRun) {
  Recorder a{&trace, "a"}, b{&trace, "b", SZ_HANDLED}, c{&trace, "c"};
  registry.add("iq/host", handler(a, 3));
  registry.add("iq/host", handler(b, 2));
  registry.add("iq/host", handler(c, 1));
  EXPECT_EQ(SZ_HANDLED, fire("iq/host"));
  EXPECT_EQ((std::vector<std::string>{"a", "b"}), trace);
}

TEST_F(HooksTest, ErrorStopsTheRunWithItsCondition) {
  Recorder a{&trace, "a", SZ_ERROR}, b{&trace, "b"};
  registry.add("message/full", handler(a, 1));
  registry.add("message/full", handler(b, 0));
  EXPECT_EQ(SZ_ERROR, fire("message/full"));
  EXPECT_EQ("not-allowed", condition);
  EXPECT_EQ(std::vector<std::string>{"a"}, trace);
}

TEST_F(HooksTest, ErrorWithoutConditionBecomesInternalServerError) {
  Recorder a{&trace, "silent", SZ_ERROR};
  registry.add("message/full", handler(a, 1));
  EXPECT_EQ(SZ_ERROR, fire("message/full"));
  EXPECT_EQ("internal-server-error", condition);
}

TEST_F(HooksTest, UnknownVerdictIsAnError) {
  // No such verdict, yet a valid value of the enum (a C plugin may return anything).
  Recorder a{&trace, "odd", static_cast<sz_verdict>(3)};
  registry.add("message/full", handler(a, 1));
  EXPECT_EQ(SZ_ERROR, fire("message/full"));
}

TEST_F(HooksTest, EventsWithoutHandlersPass) {
  EXPECT_EQ(SZ_PASS, fire("presence/bare"));
  EXPECT_FALSE(registry.has("presence/bare"));
}

TEST_F(HooksTest, PerHostHandlersSeeOnlyTheirHost) {
  Recorder mine{&trace, "mine"}, global{&trace, "global"};
  registry.add("message/host", handler(mine, 1, 1, "example.org"));
  registry.add("message/host", handler(global, 0, 2));
  fire("message/host", "example.org");
  fire("message/host", "example.net");
  EXPECT_EQ((std::vector<std::string>{"mine", "global", "global"}), trace);
}

TEST_F(HooksTest, RemovingAnOwnerDropsAllItsHandlers) {
  Recorder a{&trace, "a"}, b{&trace, "b"}, c{&trace, "c"};
  registry.add("message/bare", handler(a, 0, 1));
  registry.add("iq/host", handler(b, 0, 1));
  registry.add("message/bare", handler(c, 0, 2));
  registry.remove_owner(1);
  fire("message/bare");
  fire("iq/host");
  EXPECT_EQ(std::vector<std::string>{"c"}, trace);
  EXPECT_FALSE(registry.has("iq/host"));
}

// A handler that unloads its own plugin (or another) mid-run: the run in progress keeps its
// list, the next event sees the change. Nothing dangles.
sz_verdict unload_owner_two(sz_event*, void* user) {
  auto* r = static_cast<Recorder*>(user);
  r->trace->push_back(r->label);
  r->registry->remove_owner(2);
  return SZ_PASS;
}

TEST_F(HooksTest, UnloadDuringARunTakesEffectAtTheNextEvent) {
  Recorder first{&trace, "unloader", SZ_PASS, &registry}, victim{&trace, "victim"};
  registry.add("message/bare", Handler{10, 0, 1, {}, &unload_owner_two, &first, {}});
  registry.add("message/bare", handler(victim, 0, 2));
  fire("message/bare");
  fire("message/bare");
  EXPECT_EQ((std::vector<std::string>{"unloader", "victim", "unloader"}), trace);
}

TEST_F(HooksTest, CountsHandlers) {
  Recorder a{&trace, "a"};
  registry.add("message/bare", handler(a, 0));
  registry.add("message/bare", handler(a, 1));
  EXPECT_EQ(2u, registry.count("message/bare"));
}

// "stanza/in/iq" joins the stanza/in chain at its priority but is called for iq stanzas only.
TEST_F(HooksTest, KindFilteredHandlersKeepTheirPlaceInTheChain) {
  Recorder all_high{&trace, "all-high"}, iq{&trace, "iq"}, msg{&trace, "message"},
      all_low{&trace, "all-low"}, out{&trace, "out-iq"};
  registry.add("stanza/in", handler(all_high, 10));
  registry.add("stanza/in/iq", handler(iq, 5));
  registry.add("stanza/in/message", handler(msg, 5));
  registry.add("stanza/in", handler(all_low, 0));
  registry.add("stanza/out/iq", handler(out, 0));
  auto fire_stanza = [&](std::string_view event, std::string_view kind) {
    xml::Element stanza{std::string(kind), "jabber:client"};
    Event ev;
    ev.name = event;
    ev.host = "example.org";
    ev.stanza = &stanza;
    return registry.fire(ev);
  };
  fire_stanza("stanza/in", "iq");
  EXPECT_EQ((std::vector<std::string>{"all-high", "iq", "all-low"}), trace);
  trace.clear();
  fire_stanza("stanza/in", "presence");
  EXPECT_EQ((std::vector<std::string>{"all-high", "all-low"}), trace);
  trace.clear();
  fire_stanza("stanza/in", "message");
  fire_stanza("stanza/out", "message");
  fire_stanza("stanza/out", "iq");
  EXPECT_EQ((std::vector<std::string>{"all-high", "message", "all-low", "out-iq"}), trace);
  EXPECT_EQ(4u, registry.count("stanza/in"));
  EXPECT_EQ(1u, registry.count("stanza/in/iq"));
  EXPECT_TRUE(registry.has("stanza/out/iq"));
  EXPECT_FALSE(registry.has("stanza/out/message"));
  // Other names are not split: "stanza/in/other" is an event of its own.
  registry.add("stanza/in/other", handler(all_low, 0));
  EXPECT_EQ(1u, registry.count("stanza/in/other"));
  EXPECT_EQ(4u, registry.count("stanza/in"));
}

TEST(EventNames, ValidAndInvalid) {
  EXPECT_TRUE(valid_event_name("message/bare"));
  EXPECT_TRUE(valid_event_name("session/bound"));
  EXPECT_TRUE(valid_event_name("groups/member-added"));
  EXPECT_TRUE(valid_event_name("iq-get/host/urn:xmpp:ping:ping"));
  EXPECT_TRUE(valid_event_name("iq-set/bare/http://jabber.org/protocol/pubsub:pubsub"));
  EXPECT_FALSE(valid_event_name(""));
  EXPECT_FALSE(valid_event_name("Message/Bare"));
  EXPECT_FALSE(valid_event_name("message bare"));
  EXPECT_FALSE(valid_event_name("/message"));
  EXPECT_FALSE(valid_event_name("message/"));
}

}  // namespace
}  // namespace stanzad::plugin
