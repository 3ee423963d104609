// Tests for server/config/config.cpp: options, validation messages with file:line, paths.
#include "config/config.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

namespace stanzad::config {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "stanzad-config-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    file_ = dir_ / "stanzad.xml";
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config load_text(const std::string& text) {
    std::ofstream(file_) << text;
    return load(file_);
  }

  // The error message, or "" if the file loads.
  std::string error_of(const std::string& text) {
    try {
      load_text(text);
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  }

  std::string at(int line, const std::string& rest) {
    return file_.string() + ":" + std::to_string(line) + ": " + rest;
  }

  fs::path dir_, file_;
};

// A minimal valid file; `extra` goes on line 4.
std::string minimal(const std::string& extra) {
  return "<?xml version=\"1.0\"?>\n"
         "<stanzad>\n"
         "  <host name=\"localhost\"/>\n" +
         extra +
         "\n"
         "  <c2s/>\n"
         "</stanzad>\n";
}

TEST_F(ConfigTest, ReadsEveryOption) {
  Config c = load_text(
      "<?xml version=\"1.0\"?>\n"
      "<stanzad>\n"
      "  <!-- a comment -->\n"
      "  <server shards=\"4\" data-dir=\"var/data\"/>\n"
      "  <log level=\"debug\" file=\"log/stanzad.log\"/>\n"
      "  <host name=\"LocalHost\"/>\n"
      "  <host name=\"example.org\"/>\n"
      "  <tls certificate=\"certs/cert.pem\" key=\"/etc/stanzad/key.pem\"\n"
      "       native-records=\"false\"/>\n"
      "  <c2s address=\"127.0.0.1\" port=\"15222\" require-tls=\"no\"/>\n"
      "  <c2s-tls address=\"::1\" port=\"15223\"/>\n"
      "  <c2s-tls address=\"::1\" port=\"15224\"/>\n"
      "  <limits max-stanza-size=\"65536\" max-depth=\"32\" negotiation-timeout=\"30\"\n"
      "          scram-iterations=\"10000\" sm-max-unacked=\"0\"/>\n"
      "</stanzad>\n");
  EXPECT_EQ(c.source, file_);
  EXPECT_EQ(c.hosts, (std::vector<std::string>{"localhost", "example.org"}));
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].kind, ListenerKind::c2s);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 15222);
  EXPECT_EQ(c.listeners[1].kind, ListenerKind::c2s_direct_tls);
  EXPECT_EQ(c.listeners[1].address, "::1");
  EXPECT_EQ(c.listeners[2].port, 15224);
  EXPECT_FALSE(c.require_tls);
  EXPECT_EQ(c.shards, 4u);
  EXPECT_EQ(c.data_dir, dir_ / "var/data");
  EXPECT_EQ(c.certificate, dir_ / "certs/cert.pem");
  EXPECT_EQ(c.private_key, fs::path("/etc/stanzad/key.pem"));
  EXPECT_FALSE(c.tls_native_records);
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.log_file, dir_ / "log/stanzad.log");
  EXPECT_EQ(c.limits.max_stanza_bytes, 65536u);
  EXPECT_EQ(c.limits.max_depth, 32u);
  EXPECT_EQ(c.limits.negotiation_timeout, std::chrono::seconds(30));
  EXPECT_EQ(c.limits.scram_iterations, 10000u);
  EXPECT_EQ(c.limits.sm_max_unacked, 0u);
}

TEST_F(ConfigTest, Defaults) {
  Config c = load_text(minimal(""));
  EXPECT_EQ(c.hosts, std::vector<std::string>{"localhost"});
  ASSERT_EQ(c.listeners.size(), 1u);
  EXPECT_EQ(c.listeners[0].kind, ListenerKind::c2s);
  EXPECT_EQ(c.listeners[0].address, "0.0.0.0");
  EXPECT_EQ(c.listeners[0].port, 5222);
  EXPECT_TRUE(c.require_tls);
  EXPECT_EQ(c.shards, 0u);
  EXPECT_EQ(c.data_dir, dir_ / "data");
  EXPECT_TRUE(c.certificate.empty());
  EXPECT_TRUE(c.private_key.empty());
  EXPECT_TRUE(c.tls_native_records);
  EXPECT_EQ(c.log_level, "info");
  EXPECT_TRUE(c.log_file.empty());
  Limits defaults;
  EXPECT_EQ(c.limits.max_stanza_bytes, defaults.max_stanza_bytes);
  EXPECT_EQ(c.limits.max_depth, defaults.max_depth);
  EXPECT_EQ(c.limits.negotiation_timeout, defaults.negotiation_timeout);
  EXPECT_EQ(c.limits.scram_iterations, defaults.scram_iterations);
  EXPECT_EQ(c.limits.sm_max_unacked, 5000u);
}

TEST_F(ConfigTest, BooleansAcceptCommonSpellings) {
  for (const char* yes : {"true", "yes", "1", "TRUE", "Yes"}) {
    EXPECT_TRUE(load_text(minimal(std::string("<c2s port=\"1\" require-tls=\"") + yes + "\"/>"))
                    .require_tls)
        << yes;
  }
  for (const char* no : {"false", "no", "0"}) {
    std::string text =
        "<stanzad><host name=\"a\"/><c2s require-tls=\"" + std::string(no) + "\"/></stanzad>";
    EXPECT_FALSE(load_text(text).require_tls) << no;
  }
}

TEST_F(ConfigTest, RelativePathsResolveAgainstTheFilesDirectory) {
  fs::create_directories(dir_ / "conf");
  file_ = dir_ / "conf" / "stanzad.xml";
  Config c =
      load_text(minimal("<server data-dir=\"../data\"/><log file=\"stanzad.log\"/>"
                        "<tls certificate=\"tls/../cert.pem\" key=\"key.pem\"/>"));
  EXPECT_EQ(c.data_dir, dir_ / "data");
  EXPECT_EQ(c.log_file, dir_ / "conf" / "stanzad.log");
  EXPECT_EQ(c.certificate, dir_ / "conf" / "cert.pem");
  EXPECT_EQ(c.private_key, dir_ / "conf" / "key.pem");
  EXPECT_TRUE(c.data_dir.is_absolute());
}

TEST_F(ConfigTest, RelativeFileNameResolvesAgainstTheWorkingDirectory) {
  std::ofstream(file_) << minimal("<server data-dir=\"d\"/>");
  fs::path saved = fs::current_path();
  fs::current_path(dir_);
  Config c = load("stanzad.xml");
  fs::current_path(saved);
  EXPECT_EQ(c.source, file_);
  EXPECT_EQ(c.data_dir, dir_ / "d");
}

TEST_F(ConfigTest, TheShippedDefaultConfigLoads) {
  Config c = load(fs::path(STANZAD_SOURCE_DIR) / "conf" / "stanzad.xml");
  EXPECT_EQ(c.hosts, std::vector<std::string>{"localhost"});
  EXPECT_EQ(c.data_dir, fs::path(STANZAD_SOURCE_DIR) / "data");
  EXPECT_EQ(c.listeners.size(), 2u);
  EXPECT_TRUE(c.require_tls);
  EXPECT_TRUE(c.certificate.empty());
}

TEST_F(ConfigTest, ParseNamesTheGivenFileWithoutReadingIt) {
  try {
    parse("<stanzad>\n<nope/></stanzad>", "memory.xml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "memory.xml:2: option 'nope': unknown element (expected one of: server, log, "
                 "host, tls, c2s, c2s-tls, limits, plugins, plugin, storage)");
  }
}

TEST_F(ConfigTest, MissingFile) {
  try {
    load(dir_ / "absent.xml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir_ / "absent.xml").string() + ": cannot open: No such file or directory");
  }
}

struct BadCase {
  const char* line4;     // goes on line 4 of minimal()
  const char* expected;  // after "FILE:4: "
};

TEST_F(ConfigTest, BadValuesNameFileLineAndOption) {
  const BadCase cases[] = {
      {"<nope/>",
       "option 'nope': unknown element (expected one of: server, log, host, tls, c2s, c2s-tls, "
       "limits, plugins, plugin, storage)"},
      {"<c2s prot=\"5222\"/>",
       "option 'c2s/prot': unknown attribute (expected one of: address, port, require-tls)"},
      {"<host/>", "option 'host/name': required attribute is missing"},
      {"<host name=\"bad host\"/>", "option 'host/name': 'bad host' is not a valid host name"},
      {"<host name=\"\"/>", "option 'host/name': '' is not a valid host name"},
      {"<host name=\"LOCALHOST\"/>", "option 'host/name': duplicate host 'localhost'"},
      {"<c2s port=\"70000\"/>", "option 'c2s/port': '70000' is not a port number"},
      {"<c2s port=\"0\"/>", "option 'c2s/port': '0' is not a port number"},
      {"<c2s-tls port=\"http\"/>", "option 'c2s-tls/port': 'http' is not a port number"},
      {"<c2s-tls port=\"-1\"/>", "option 'c2s-tls/port': '-1' is not a port number"},
      {"<c2s address=\"example.org\" port=\"1\"/>",
       "option 'c2s/address': 'example.org' is not an IPv4 or IPv6 address"},
      {"<c2s port=\"1\" require-tls=\"maybe\"/>",
       "option 'c2s/require-tls': 'maybe' is not a boolean (true/false, yes/no, 1/0)"},
      {"<log level=\"verbose\"/>",
       "option 'log/level': 'verbose' is not a log level (trace, debug, info, warn, error)"},
      {"<server shards=\"-1\"/>", "option 'server/shards': '-1' is not a number"},
      {"<server shards=\"4x\"/>", "option 'server/shards': '4x' is not a number"},
      {"<server shards=\"\"/>", "option 'server/shards': '' is not a number"},
      {"<server shards=\"5000\"/>", "option 'server/shards': '5000' is too large (at most 1024)"},
      {"<limits sm-max-unacked=\"1000001\"/>",
       "option 'limits/sm-max-unacked': '1000001' is too large (at most 1000000)"},
      {"<server shards=\"99999999999999999999999\"/>",
       "option 'server/shards': '99999999999999999999999' is too large (at most 1024)"},
      {"<server data-dir=\"\"/>", "option 'server/data-dir': must not be empty"},
      {"<tls key=\"k.pem\"/>", "option 'tls/certificate': key is set but certificate is not"},
      {"<tls certificate=\"c.pem\"/>", "option 'tls/key': certificate is set but key is not"},
      {"<limits max-depth=\"1\"/>", "option 'limits/max-depth': '1' is too small (at least 2)"},
      {"<limits max-depth=\"10000\"/>",
       "option 'limits/max-depth': '10000' is too large (at most 1000)"},
      {"<limits negotiation-timeout=\"0\"/>",
       "option 'limits/negotiation-timeout': '0' is too small (at least 1)"},
      {"<limits max-stanza-size=\"100\"/>",
       "option 'limits/max-stanza-size': '100' is too small (at least 10000)"},
      {"<limits scram-iterations=\"1000\"/>",
       "option 'limits/scram-iterations': '1000' is too small (at least 4096)"},
      {"<host name=\"a\"><plugin/></host>",
       "option 'host/plugin/name': required attribute is missing"},
      {"<host name=\"a\"><module name=\"x\"/></host>",
       "option 'host/module': unknown element (expected one of: plugin)"},
      {"<plugin name=\"Ping\"/>",
       "option 'plugin/name': 'Ping' is not a plugin name (a-z, 0-9, _ and -)"},
      {"<plugins directory=\"\" lua=\"x\"/>",
       "option 'plugins/lua': unknown attribute (expected one of: directory, lua-directory)"},
      {"<limits>64</limits>", "option 'limits': unexpected text '64'"},
      {"<limits burst-bytes=\"100\"/>",
       "option 'limits/burst-bytes': must be at least max-stanza-size (262144) or no stanza fits"},
      {"<limits sessions-per-account=\"x\"/>",
       "option 'limits/sessions-per-account': 'x' is not a number"},
      {"some text", "option 'stanzad': unexpected text 'some text'"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(error_of(minimal(c.line4)), at(4, c.expected)) << c.line4;
  }
}

// The later of two conflicting listeners is the one reported.
TEST_F(ConfigTest, ConflictingListeners) {
  EXPECT_EQ(
      error_of(minimal("<c2s port=\"5222\"/>")),
      at(5, "option 'c2s/port': address 0.0.0.0 port 5222 is already used by another listener"));
  EXPECT_EQ(
      error_of(minimal("<c2s-tls port=\"5222\"/>")),
      at(5, "option 'c2s/port': address 0.0.0.0 port 5222 is already used by another listener"));
  EXPECT_EQ(error_of(minimal("<c2s port=\"1\" require-tls=\"false\"/>")),
            at(5,
               "option 'c2s/require-tls': differs from an earlier <c2s>; it must be the same on "
               "every <c2s>"));
  // The same port on two addresses is fine.
  EXPECT_EQ(error_of(minimal("<c2s address=\"127.0.0.1\"/>")), "");
}

TEST_F(ConfigTest, ElementsThatMayAppearOnce) {
  EXPECT_EQ(error_of(minimal("<log/><log/>")), at(4, "option 'log': may appear only once"));
  EXPECT_EQ(error_of(minimal("<server/>\n<limits/>\n<server/>")),
            at(6, "option 'server': may appear only once"));
}

TEST_F(ConfigTest, AttributeOnItsOwnLineIsReportedThere) {
  EXPECT_EQ(
      error_of(minimal("<limits\n    max-depth=\"64\"\n    max-deth=\"2\"/>")),
      at(6,
         "option 'limits/max-deth': unknown attribute (expected one of: max-stanza-size, "
         "max-depth, negotiation-timeout, resume-timeout, sm-max-unacked, connections-per-ip, "
         "sessions-per-account, auth-failures-per-ip, auth-failure-window, "
         "bytes-per-second, burst-bytes, scram-iterations)"));
  EXPECT_EQ(error_of(minimal("<limits\n    max-depth=\"1\"/>")),
            at(5, "option 'limits/max-depth': '1' is too small (at least 2)"));
}

TEST_F(ConfigTest, DocumentLevelErrors) {
  EXPECT_EQ(error_of("<?xml version=\"1.0\"?>\n<stanzad>\n  <c2s/>\n</stanzad>\n"),
            at(2, "option 'host': at least one <host name=\"...\"/> is required"));
  EXPECT_EQ(error_of("<stanzad>\n  <host name=\"a\"/>\n</stanzad>\n"),
            at(1, "option 'c2s': no listener: add <c2s/> or <c2s-tls/>"));
  EXPECT_EQ(error_of("<?xml version=\"1.0\"?>\n\n<prosody/>\n"),
            at(3, "option 'prosody': the root element must be <stanzad>"));
  EXPECT_EQ(error_of("<stanzad\n version=\"2\"><host name=\"a\"/><c2s/></stanzad>"),
            at(2, "option 'stanzad/version': unknown attribute (<stanzad> takes none)"));
}

TEST_F(ConfigTest, SyntaxErrorsNameTheLine) {
  EXPECT_EQ(error_of("<stanzad>\n  <host name=\"a\"/>\n  <c2s port=5222/>\n</stanzad>\n"),
            at(3, "XML syntax error: Error parsing element attribute"));
  EXPECT_EQ(error_of("<stanzad>\n  <host name=\"a\">\n</stanzad>\n"),
            at(3, "XML syntax error: Start-end tags mismatch"));
  EXPECT_EQ(error_of(""), at(1, "XML syntax error: No document element found"));
  EXPECT_EQ(error_of("<stanzad/>\n<stanzad/>"),
            at(2, "XML syntax error: more than one root element"));
}

}  // namespace
}  // namespace stanzad::config

TEST(ConfigPlugins, GlobalAndPerHostPluginsKeepTheirOptionsAndLines) {
  auto c = stanzad::config::parse(
      "<stanzad>\n"
      "<host name='example.org'>\n"
      "  <plugin name='greeter' greeter_text='hi'\n"
      "          greeter_delay_ms='5'/>\n"
      "</host>\n"
      "<c2s port='5222'/>\n"
      "<plugin name='ping' file='plugins/libping.so'/>\n"
      "</stanzad>\n",
      "/etc/stanzad/stanzad.xml");
  ASSERT_EQ(2u, c.plugins.size());
  const auto& greeter = c.plugins[0];
  EXPECT_EQ("greeter", greeter.name);
  EXPECT_EQ("example.org", greeter.host);
  EXPECT_EQ(3u, greeter.line);
  ASSERT_EQ(2u, greeter.options.size());
  EXPECT_EQ("hi", greeter.options.at("greeter_text").value);
  EXPECT_EQ(3u, greeter.options.at("greeter_text").line);
  EXPECT_EQ(4u, greeter.options.at("greeter_delay_ms").line);
  const auto& ping = c.plugins[1];
  EXPECT_EQ("", ping.host);
  EXPECT_EQ("/etc/stanzad/plugins/libping.so", ping.file.string());
  EXPECT_TRUE(ping.options.empty());
}
