// The stanza pipeline's per-stanza cost: 10 pass-through C++ handlers (through the SDK's C ABI
// trampolines), and 1 Lua handler; with the heap allocations each fire makes.
//   build/bench/pipeline/pipeline_bench
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <stanzad/plugin.hpp>
#include <vector>

#include "count_allocations.hpp"
#include "fake_host.hpp"
#include "plugin/event.hpp"
#include "plugin/lua_host.hpp"
#include "xmpp/jid.hpp"

using stanzad::testing::allocations;

namespace sz = stanzad::sdk;

// Ten observers, as archive, receipts, push and friends would be: each looks at the stanza
// and passes.
class TenObservers {
 public:
  explicit TenObservers(sz::Module& m) {
    for (int i = 0; i < 10; ++i) {
      m.hook("message/bare", [this](sz::Event& ev) {
        seen_ += ev.stanza().name().size();
        return sz::Verdict::pass;
      });
    }
  }

 private:
  std::uint64_t seen_ = 0;
};

STANZAD_PLUGIN(TenObservers, "observers", "1.0.0")

namespace {

stanzad::xml::Element chat_message() {
  stanzad::xml::Element msg("message", "jabber:client");
  msg.set_attr("from", "romeo@example.org/orchard");
  msg.set_attr("to", "juliet@example.org");
  msg.set_attr("type", "chat");
  msg.set_attr("id", "a1b2c3");
  msg.add_child("body").add_text("But soft, what light through yonder window breaks?");
  return msg;
}

void run(benchmark::State& state, stanzad::testing::FakeHost& host) {
  auto msg = chat_message();
  auto from = *stanzad::xmpp::Jid::parse("romeo@example.org/orchard");
  auto to = *stanzad::xmpp::Jid::parse("juliet@example.org");
  stanzad::plugin::Event ev;
  ev.name = "message/bare";
  ev.stanza = &msg;
  ev.from = &from;
  ev.to = &to;
  ev.host = "example.org";
  auto& hooks = host.hooks();
  hooks.fire(ev);  // warm up
  std::uint64_t before = allocations.load();
  for (auto _ : state) benchmark::DoNotOptimize(hooks.fire(ev));
  state.counters["allocs_per_fire"] = benchmark::Counter(
      static_cast<double>(allocations.load() - before) / static_cast<double>(state.iterations()));
}

void BM_TenCxxHandlers(benchmark::State& state) {
  stanzad::testing::FakeHost host({}, "example.org");
  if (!host.load_cxx(stanzad_plugin_v1())) state.SkipWithError("load failed");
  run(state, host);
}
BENCHMARK(BM_TenCxxHandlers);

void BM_OneLuaHandler(benchmark::State& state) {
  auto path = std::filesystem::temp_directory_path() / "mod_bench_observer.lua";
  std::ofstream(path) << "local seen = 0\n"
                         "module:hook(\"message/bare\", function(event)\n"
                         "  seen = seen + #event.stanza.name\n"
                         "end)\n";
  stanzad::testing::FakeHost host({}, "example.org");
  std::string error;
  if (!host.load_lua("bench_observer", path.string(), &error)) state.SkipWithError(error.c_str());
  run(state, host);
}
BENCHMARK(BM_OneLuaHandler);

// What the shipped Lua plugins cost one chat message, as a server with the default plugin set
// runs it: stanza/in on the sender's shard (blocking's outbound guard), message/bare on the
// recipient's owner shard (blocking's inbound guard), stanza/out to the recipient's session
// (CSI). Nobody blocks anyone and no session is inactive: the common case.
void BM_ChatMessageThroughShippedLuaPlugins(benchmark::State& state) {
  stanzad::plugin::lua::set_runtime_path(STANZAD_LUA_DIR);  // require "stanzad.stanza"
  stanzad::testing::FakeHost host({}, "example.org");
  std::string error;
  std::vector<const char*> modules;
  if (state.range(0) != 2) modules.push_back("blocking");
  if (state.range(0) != 1) modules.push_back("csi");
  for (const char* name : modules) {
    std::string path = std::string(STANZAD_LUA_DIR) + "/mod_" + name + ".lua";
    if (!host.load_lua(name, path, &error)) state.SkipWithError(error.c_str());
  }
  auto msg = chat_message();
  auto from = *stanzad::xmpp::Jid::parse("romeo@example.org/orchard");
  auto to = *stanzad::xmpp::Jid::parse("juliet@example.org");
  auto recipient = *stanzad::xmpp::Jid::parse("juliet@example.org/balcony");
  auto& hooks = host.hooks();
  auto fire = [&](std::string_view name, const stanzad::xmpp::Jid* session) {
    stanzad::plugin::Event ev;
    ev.name = name;
    ev.stanza = &msg;
    ev.from = &from;
    ev.to = &to;
    ev.session = session;
    ev.host = "example.org";
    return hooks.fire(ev);
  };
  auto one_message = [&] {
    benchmark::DoNotOptimize(fire("stanza/in", &from));
    benchmark::DoNotOptimize(fire("message/bare", nullptr));
    benchmark::DoNotOptimize(fire("stanza/out", &recipient));
  };
  one_message();  // warm up (loads the block lists)
  std::uint64_t before = allocations.load();
  for (auto _ : state) one_message();
  state.counters["allocs_per_msg"] = benchmark::Counter(
      static_cast<double>(allocations.load() - before) / static_cast<double>(state.iterations()));
}
// Arg: 0 both, 1 blocking alone, 2 CSI alone.
BENCHMARK(BM_ChatMessageThroughShippedLuaPlugins)->Arg(0)->Arg(1)->Arg(2);

void BM_NoHandlers(benchmark::State& state) {
  stanzad::testing::FakeHost host({}, "example.org");
  run(state, host);
}
BENCHMARK(BM_NoHandlers);

}  // namespace

BENCHMARK_MAIN();
