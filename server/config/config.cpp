// Reads conf/stanzad.xml: a table of elements, each read by one small function.
#include "config/config.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <pugixml.hpp>
#include <span>
#include <utility>

#include "xmpp/jid.hpp"

namespace stanzad::config {
namespace {

namespace fs = std::filesystem;

// The text being read, kept twice: pugixml parses `buffer_` in place (so every name and value
// points into it), while `original_` keeps the untouched bytes to count lines in.
class Document {
 public:
  Document(std::string_view text, const fs::path& file)
      : file_(file), original_(text), buffer_(text), base_(fs::absolute(file).parent_path()) {}

  std::string& buffer() { return buffer_; }
  const fs::path& base() const { return base_; }

  // The 1-based line of a pointer into buffer(), or of a byte offset.
  std::size_t line_of(const char* p) const {
    if (p < buffer_.data() || p > buffer_.data() + buffer_.size()) return 0;
    return line_at(static_cast<std::size_t>(p - buffer_.data()));
  }
  std::size_t line_at(std::size_t offset) const {
    offset = std::min(offset, original_.size());
    return 1 + static_cast<std::size_t>(
                   std::count(original_.begin(), original_.begin() + offset, '\n'));
  }

  [[noreturn]] void fail(std::size_t line, std::string_view what) const {
    std::string where = file_.string();
    if (line != 0) where += ':' + std::to_string(line);
    throw ConfigError(where + ": " + std::string(what));
  }
  [[noreturn]] void fail(std::size_t line, std::string_view option, std::string_view what) const {
    fail(line, "option '" + std::string(option) + "': " + std::string(what));
  }

 private:
  fs::path file_;
  std::string original_;
  std::string buffer_;
  fs::path base_;
};

std::string quote(std::string_view value) { return "'" + std::string(value) + "'"; }

std::string join(std::span<const std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

// One element being read. Each accessor names an attribute it understands; finish() then
// refuses whatever attribute no accessor asked for, so the readers below are also the schema.
class Element {
 public:
  Element(const Document& doc, pugi::xml_node node, std::string path)
      : doc_(doc), node_(node), path_(std::move(path)) {}

  const std::string& path() const { return path_; }
  std::size_t line() const { return doc_.line_of(node_.name()); }

  [[noreturn]] void fail(std::string_view what) const { doc_.fail(line(), path_, what); }
  [[noreturn]] void fail(std::string_view attr, std::string_view what) const {
    auto a = node_.attribute(std::string(attr).c_str());
    std::size_t at = a ? doc_.line_of(a.name()) : 0;
    doc_.fail(at != 0 ? at : line(), path_ + "/" + std::string(attr), what);
  }

  std::optional<std::string_view> raw(std::string_view attr) {
    if (std::find(known_.begin(), known_.end(), attr) == known_.end()) known_.push_back(attr);
    auto a = node_.attribute(std::string(attr).c_str());
    if (!a) return std::nullopt;
    return std::string_view(a.value());
  }

  std::string_view required(std::string_view attr) {
    auto v = raw(attr);
    if (!v) fail(attr, "required attribute is missing");
    return *v;
  }

  std::string text(std::string_view attr, std::string_view fallback) {
    return std::string(raw(attr).value_or(fallback));
  }

  bool boolean(std::string_view attr, bool fallback) {
    auto v = raw(attr);
    if (!v) return fallback;
    std::string lower(*v);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "true" || lower == "yes" || lower == "1") return true;
    if (lower == "false" || lower == "no" || lower == "0") return false;
    fail(attr, quote(*v) + " is not a boolean (true/false, yes/no, 1/0)");
  }

  template <class T>
  T number(std::string_view attr, std::optional<T> fallback, T min, T max) {
    auto v = fallback ? raw(attr) : std::optional(required(attr));
    if (!v) return *fallback;
    unsigned long long n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || end != v->data() + v->size() || ec == std::errc::invalid_argument) {
      fail(attr, quote(*v) + " is not a number");
    }
    if (ec == std::errc::result_out_of_range || n > static_cast<unsigned long long>(max)) {
      fail(attr, quote(*v) + " is too large (at most " + std::to_string(max) + ")");
    }
    if (n < static_cast<unsigned long long>(min)) {
      fail(attr, quote(*v) + " is too small (at least " + std::to_string(min) + ")");
    }
    return static_cast<T>(n);
  }

  std::uint16_t port(std::string_view attr, std::uint16_t fallback) {
    auto v = raw(attr);
    if (!v) return fallback;
    unsigned n = 0;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (v->empty() || ec != std::errc() || end != v->data() + v->size() || n == 0 || n > 65535) {
      fail(attr, quote(*v) + " is not a port number");
    }
    return static_cast<std::uint16_t>(n);
  }

  std::string address(std::string_view attr, std::string_view fallback) {
    std::string v = text(attr, fallback);
    unsigned char scratch[16];
    if (inet_pton(AF_INET, v.c_str(), scratch) != 1 &&
        inet_pton(AF_INET6, v.c_str(), scratch) != 1) {
      fail(attr, quote(v) + " is not an IPv4 or IPv6 address");
    }
    return v;
  }

  // A path, relative ones resolved against the configuration file's directory; an empty value
  // gives an empty path unless `allow_empty` is false.
  fs::path path(std::string_view attr, std::string_view fallback, bool allow_empty) {
    std::string v = text(attr, fallback);
    if (v.empty()) {
      if (!allow_empty) fail(attr, "must not be empty");
      return {};
    }
    fs::path p(v);
    return (p.is_absolute() ? p : doc_.base() / p).lexically_normal();
  }

  // Every attribute but `except`, with its line: a plugin's options, checked by the plugin.
  std::vector<std::pair<std::string, PluginOption>> rest(std::span<const std::string_view> except) {
    std::vector<std::pair<std::string, PluginOption>> out;
    for (auto a : node_.attributes()) {
      std::string_view name = a.name();
      if (std::find(except.begin(), except.end(), name) != except.end()) continue;
      known_.push_back(a.name());
      out.emplace_back(std::string(name), PluginOption{a.value(), doc_.line_of(a.name())});
    }
    return out;
  }

  pugi::xml_node node() const { return node_; }
  const Document& doc() const { return doc_; }

  // Refuses attributes nobody asked for, text, and (unless `children` lists them) child elements.
  void finish(std::span<const std::string_view> children = {}) const {
    for (auto a : node_.attributes()) {
      if (std::find(known_.begin(), known_.end(), a.name()) != known_.end()) continue;
      std::string what = "unknown attribute";
      what += known_.empty() ? " (<" + std::string(node_.name()) + "> takes none)"
                             : " (expected one of: " + join(known_) + ")";
      doc_.fail(doc_.line_of(a.name()), (path_.empty() ? node_.name() : path_) + "/" + a.name(),
                what);
    }
    for (auto child : node_.children()) {
      if (child.type() == pugi::node_pcdata || child.type() == pugi::node_cdata) {
        std::string_view text = child.value();
        auto first = text.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos) continue;
        text = text.substr(first, text.find_last_not_of(" \t\r\n") + 1 - first);
        doc_.fail(doc_.line_of(child.value() + first), path_.empty() ? node_.name() : path_,
                  "unexpected text " + quote(text));
      }
      if (child.type() != pugi::node_element) continue;
      std::string_view name = child.name();
      if (std::find(children.begin(), children.end(), name) != children.end()) continue;
      std::string what = "unknown element";
      what += children.empty() ? " (<" + std::string(node_.name()) + "> takes no child elements)"
                               : " (expected one of: " + join(children) + ")";
      doc_.fail(doc_.line_of(child.name()),
                path_.empty() ? std::string(name) : path_ + "/" + std::string(name), what);
    }
  }

 private:
  const Document& doc_;
  pugi::xml_node node_;
  std::string path_;
  std::vector<std::string_view> known_;
};

// --- One reader per element. Adding an option is one line in its reader; adding an element is
// one reader and one row in kElements.

void read_server(Element& e, Config& c) {
  c.shards = e.number<unsigned>("shards", 0u, 0u, 1024u);
  c.data_dir = e.path("data-dir", "data", false);
}

void read_log(Element& e, Config& c) {
  c.log_level = e.text("level", "info");
  constexpr std::string_view levels[] = {"trace", "debug", "info", "warn", "error"};
  if (std::find(std::begin(levels), std::end(levels), c.log_level) == std::end(levels)) {
    e.fail("level", quote(c.log_level) + " is not a log level (" + join(levels) + ")");
  }
  c.log_file = e.path("file", "", true);
}

constexpr std::string_view kPluginFixed[] = {"name", "file"};

void read_plugin_into(Element& e, Config& c, const std::string& host) {
  PluginSpec spec;
  spec.name = std::string(e.required("name"));
  bool ok = !spec.name.empty() && std::all_of(spec.name.begin(), spec.name.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-';
  });
  if (!ok) e.fail("name", quote(spec.name) + " is not a plugin name (a-z, 0-9, _ and -)");
  spec.file = e.path("file", "", true);
  spec.host = host;
  spec.line = e.line();
  for (auto& [name, option] : e.rest(kPluginFixed)) spec.options.emplace(name, std::move(option));
  for (const auto& other : c.plugins)
    if (other.name == spec.name && other.host == spec.host)
      e.fail("name", "plugin " + quote(spec.name) + " is already loaded here");
  c.plugins.push_back(std::move(spec));
}

void read_plugin(Element& e, Config& c) { read_plugin_into(e, c, ""); }

void read_plugins(Element& e, Config& c) {
  c.plugin_dir = e.path("directory", "", true);
  c.lua_dir = e.path("lua-directory", "", true);
}

void read_host(Element& e, Config& c) {
  std::string_view name = e.required("name");
  auto host = xmpp::Jid::prep_domain(name);
  if (!host || host->empty()) e.fail("name", quote(name) + " is not a valid host name");
  if (std::find(c.hosts.begin(), c.hosts.end(), *host) != c.hosts.end()) {
    e.fail("name", "duplicate host " + quote(*host));
  }
  c.hosts.push_back(*host);
  for (pugi::xml_node child : e.node().children("plugin")) {
    Element p(e.doc(), child, "host/plugin");
    read_plugin_into(p, c, *host);
    p.finish();
  }
}

void read_tls(Element& e, Config& c) {
  c.certificate = e.path("certificate", "", true);
  c.private_key = e.path("key", "", true);
  c.tls_native_records = e.boolean("native-records", true);
  if (c.certificate.empty() && !c.private_key.empty())
    e.fail("certificate", "key is set but certificate is not");
  if (!c.certificate.empty() && c.private_key.empty())
    e.fail("key", "certificate is set but key is not");
}

void add_listener(Element& e, Config& c, Listener listener) {
  for (const auto& other : c.listeners) {
    if (other.address == listener.address && other.port == listener.port) {
      e.fail("port", "address " + listener.address + " port " + std::to_string(listener.port) +
                         " is already used by another listener");
    }
  }
  c.listeners.push_back(std::move(listener));
}

void read_c2s(Element& e, Config& c) {
  Listener l{ListenerKind::c2s, e.address("address", "0.0.0.0"), e.port("port", 5222)};
  bool first = std::none_of(c.listeners.begin(), c.listeners.end(),
                            [](const Listener& o) { return o.kind == ListenerKind::c2s; });
  bool require_tls = e.boolean("require-tls", true);
  if (!first && require_tls != c.require_tls) {
    e.fail("require-tls", "differs from an earlier <c2s>; it must be the same on every <c2s>");
  }
  c.require_tls = require_tls;
  add_listener(e, c, std::move(l));
}

void read_c2s_tls(Element& e, Config& c) {
  add_listener(
      e, c, {ListenerKind::c2s_direct_tls, e.address("address", "0.0.0.0"), e.port("port", 5223)});
}

void read_limits(Element& e, Config& c) {
  Limits& l = c.limits;
  // RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
  l.max_stanza_bytes =
      e.number<std::size_t>("max-stanza-size", l.max_stanza_bytes, 10000, 64u << 20);
  // Stanza trees are copied, compared and destroyed recursively: the ceiling keeps that well
  // inside a shard thread's stack in every build (10000 levels overflowed it under ASan).
  l.max_depth = e.number<std::size_t>("max-depth", l.max_depth, 2, 1000);
  l.negotiation_timeout = std::chrono::seconds(e.number<unsigned>(
      "negotiation-timeout", static_cast<unsigned>(l.negotiation_timeout.count()), 1, 3600));
  l.resume_timeout = std::chrono::seconds(e.number<unsigned>(
      "resume-timeout", static_cast<unsigned>(l.resume_timeout.count()), 1, 86400));
  l.sm_max_unacked = e.number<std::uint32_t>("sm-max-unacked", l.sm_max_unacked, 0, 1000000);
  l.connections_per_ip =
      e.number<std::uint32_t>("connections-per-ip", l.connections_per_ip, 0, 1000000);
  l.sessions_per_account =
      e.number<std::uint32_t>("sessions-per-account", l.sessions_per_account, 0, 100000);
  l.auth_failures_per_ip =
      e.number<std::uint32_t>("auth-failures-per-ip", l.auth_failures_per_ip, 0, 1000000);
  l.auth_failure_window = std::chrono::seconds(e.number<unsigned>(
      "auth-failure-window", static_cast<unsigned>(l.auth_failure_window.count()), 1, 86400));
  l.bytes_per_second =
      e.number<std::uint64_t>("bytes-per-second", l.bytes_per_second, 0, 1ull << 40);
  l.burst_bytes = e.number<std::uint64_t>("burst-bytes", l.burst_bytes, 0, 1ull << 40);
  if (l.bytes_per_second != 0 && l.burst_bytes < l.max_stanza_bytes)
    e.fail("burst-bytes", "must be at least max-stanza-size (" +
                              std::to_string(l.max_stanza_bytes) + ") or no stanza fits");
  // RFC 5802 §5.1 and RFC 7677 §4: at least 4096 iterations.
  l.scram_iterations =
      e.number<std::uint32_t>("scram-iterations", l.scram_iterations, 4096, 10000000);
}

// The first line of a file, without its line ending: a password file written by `echo`.
std::optional<std::string> read_secret_file(const fs::path& file, std::string& error) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) {
    error = file.string() + ": cannot open: " + std::strerror(errno);
    return std::nullopt;
  }
  std::string text;
  char chunk[4096];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0 && text.size() < (1u << 16))
    text.append(chunk, n);
  std::fclose(f);
  auto end = text.find_first_of("\r\n");
  if (end != std::string::npos) text.resize(end);
  return text;
}

void read_storage(Element& e, Config& c) {
  Storage& s = c.storage;
  std::string backend = e.text("backend", "sqlite");
  if (backend == "sqlite") {
    s.backend = Storage::Backend::sqlite;
  } else if (backend == "mysql") {
    s.backend = Storage::Backend::mysql;
  } else {
    e.fail("backend", quote(backend) + " is not a storage backend (sqlite, mysql)");
  }
  const bool mysql = s.backend == Storage::Backend::mysql;
  // Options of the other backend are refused rather than ignored: a misplaced one is a mistake.
  auto only = [&](std::string_view attr, bool for_mysql) {
    if (e.raw(attr) && for_mysql != mysql) {
      e.fail(attr,
             std::string("applies only to backend=\"") + (for_mysql ? "mysql" : "sqlite") + "\"");
    }
  };
  for (auto a : {"file", "synchronous"}) only(a, false);
  for (auto a : {"host", "port", "socket", "database", "user", "password", "password-file",
                 "password-env", "connect-timeout", "timeout"}) {
    only(a, true);
  }
  s.file = e.path("file", "", true);
  std::string sync = e.text("synchronous", "full");
  if (sync != "full" && sync != "normal") {
    e.fail("synchronous", quote(sync) + " is not full or normal");
  }
  s.synchronous_full = sync == "full";
  s.host = e.text("host", s.host);
  if (s.host.empty()) e.fail("host", "must not be empty");
  s.port = e.port("port", s.port);
  s.socket = e.path("socket", "", true);
  s.database = e.text("database", s.database);
  if (s.database.empty() || s.database.size() > 64 ||
      s.database.find_first_of("`\\/.") != std::string::npos) {
    e.fail("database", quote(s.database) + " is not a valid database name");
  }
  s.user = e.text("user", s.user);
  auto password = e.raw("password");
  auto password_file = e.raw("password-file");
  auto password_env = e.raw("password-env");
  if ((password ? 1 : 0) + (password_file ? 1 : 0) + (password_env ? 1 : 0) > 1) {
    e.fail(password_file ? "password-file" : "password-env",
           "give at most one of password, password-file, password-env");
  }
  if (password) s.password = std::string(*password);
  if (password_file) {
    std::string error;
    auto secret = read_secret_file(e.path("password-file", "", false), error);
    if (!secret) e.fail("password-file", error);
    s.password = std::move(*secret);
  }
  if (password_env) {
    if (password_env->empty()) e.fail("password-env", "must not be empty");
    const char* value = std::getenv(std::string(*password_env).c_str());
    if (value == nullptr) {
      e.fail("password-env", "environment variable " + quote(*password_env) + " is not set");
    }
    s.password = value;
  }
  s.connect_timeout = std::chrono::seconds(e.number<unsigned>(
      "connect-timeout", static_cast<unsigned>(s.connect_timeout.count()), 1, 3600));
  s.timeout = std::chrono::seconds(
      e.number<unsigned>("timeout", static_cast<unsigned>(s.timeout.count()), 1, 3600));
  s.pool_size = e.number<unsigned>("pool-size", s.pool_size, 1, 256);
  s.queue_limit = e.number<std::size_t>("queue-limit", s.queue_limit, 1, 100000000);
  s.batch_limit = e.number<std::size_t>("batch-limit", s.batch_limit, 1, 1000000);
}

struct ElementRule {
  std::string_view name;
  bool repeatable;
  void (*read)(Element&, Config&);
  std::span<const std::string_view> children = {};
};

constexpr std::string_view kHostChildren[] = {"plugin"};

constexpr ElementRule kElements[] = {
    {"server", false, read_server},
    {"log", false, read_log},
    {"host", true, read_host, kHostChildren},
    {"tls", false, read_tls},
    {"c2s", true, read_c2s},
    {"c2s-tls", true, read_c2s_tls},
    {"limits", false, read_limits},
    {"plugins", false, read_plugins},
    {"plugin", true, read_plugin},
    {"storage", false, read_storage},
};

}  // namespace

Config parse(std::string_view text, const fs::path& file) {
  Document doc(text, file);
  pugi::xml_document xml;
  auto& buffer = doc.buffer();
  auto result = xml.load_buffer_inplace(buffer.data(), buffer.size(), pugi::parse_default,
                                        pugi::encoding_utf8);
  if (!result) {
    doc.fail(doc.line_at(static_cast<std::size_t>(std::max<std::ptrdiff_t>(result.offset, 0))),
             std::string("XML syntax error: ") + result.description());
  }
  pugi::xml_node root = xml.document_element();
  // pugixml accepts several top-level elements; a configuration is one document.
  for (pugi::xml_node node : xml.children()) {
    if (node.type() == pugi::node_element && node != root) {
      doc.fail(doc.line_of(node.name()), "XML syntax error: more than one root element");
    }
  }
  if (std::string_view(root.name()) != "stanzad") {
    doc.fail(doc.line_of(root.name()), root.name(), "the root element must be <stanzad>");
  }

  Config config;
  config.source = fs::absolute(file).lexically_normal();
  config.data_dir = doc.base() / "data";

  std::vector<std::string_view> names;
  for (const auto& rule : kElements) names.push_back(rule.name);
  Element top(doc, root, "");
  top.finish(names);

  for (pugi::xml_node node : root.children()) {
    if (node.type() != pugi::node_element) continue;
    std::string_view name = node.name();
    const ElementRule& rule = *std::find_if(std::begin(kElements), std::end(kElements),
                                            [&](const ElementRule& r) { return r.name == name; });
    Element element(doc, node, std::string(name));
    if (!rule.repeatable && node.previous_sibling(node.name())) {
      element.fail("may appear only once");
    }
    rule.read(element, config);
    element.finish(rule.children);
  }

  std::size_t root_line = doc.line_of(root.name());
  if (config.hosts.empty())
    doc.fail(root_line, "host", "at least one <host name=\"...\"/> is required");
  if (config.listeners.empty()) doc.fail(root_line, "c2s", "no listener: add <c2s/> or <c2s-tls/>");
  return config;
}

Config load(const fs::path& file) {
  std::FILE* f = std::fopen(file.c_str(), "rb");
  if (f == nullptr) throw ConfigError(file.string() + ": cannot open: " + std::strerror(errno));
  std::string text;
  char chunk[8192];
  std::size_t n;
  while ((n = std::fread(chunk, 1, sizeof chunk, f)) > 0) text.append(chunk, n);
  int error = std::ferror(f) ? errno : 0;
  std::fclose(f);
  if (error != 0) throw ConfigError(file.string() + ": cannot read: " + std::strerror(error));
  return parse(text, file);
}

}  // namespace stanzad::config
