// stanzactl: add, change, remove and list accounts; export and import a server (XEP-0227).
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "control.hpp"
#include "storage/portable.hpp"
#include "storage/storage.hpp"
#include "xmpp/jid.hpp"

namespace {

using stanzad::storage::Storage;

// Every failure ends here: one line on stderr and a non-zero exit.
struct Failure {
  std::string message;
  int code = 1;
};

[[noreturn]] void fail(std::string message) { throw Failure{std::move(message)}; }

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

struct Account {
  std::string username, host;
  std::string jid() const { return username + "@" + host; }
};

bool is_host(const stanzad::config::Config& config, const std::string& host) {
  return std::find(config.hosts.begin(), config.hosts.end(), host) != config.hosts.end();
}

// A bare JID with a node, on one of the configured hosts, normalized.
Account account(const stanzad::config::Config& config, const std::string& text) {
  auto jid = stanzad::xmpp::Jid::parse(text);
  if (!jid) fail("'" + text + "' is not a valid JID");
  if (!jid->is_bare() || jid->node().empty()) fail("'" + text + "' is not a bare JID user@host");
  if (!is_host(config, jid->domain())) {
    fail(jid->domain() + " is not a host in " + config.source.string());
  }
  return {jid->node(), jid->domain()};
}

// The password from the command line, or else one line from standard input (not echoed on a
// terminal), so that it need not show in the process list or the shell history.
std::string password(const std::optional<std::string>& given) {
  std::string pw;
  if (given) {
    pw = *given;
  } else {
    bool tty = ::isatty(STDIN_FILENO) != 0;
    termios saved{};
    if (tty) {
      std::fputs("password: ", stderr);
      ::tcgetattr(STDIN_FILENO, &saved);
      termios quiet = saved;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::getline(std::cin, pw);
    if (tty) {
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
      std::fputs("\n", stderr);
    }
    if (!pw.empty() && pw.back() == '\r') pw.pop_back();
  }
  if (pw.empty()) fail("the password must not be empty");
  return pw;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("stanzactl: administer a stanzad server's accounts", "stanzactl");
  app.set_version_flag("--version", "stanzactl " STANZAD_VERSION);
  app.require_subcommand(1);
  app.fallthrough();  // --config may also follow the subcommand
  std::string config_file = STANZAD_DEFAULT_CONFIG;
  app.add_option("-c,--config", config_file,
                 "configuration file (default: " STANZAD_DEFAULT_CONFIG ")")
      ->option_text("FILE");

  std::string jid;
  std::optional<std::string> pw;
  std::optional<std::string> host;

  auto* adduser = app.add_subcommand("adduser", "create an account");
  adduser->add_option("JID", jid, "bare JID, user@host")->required();
  adduser->add_option("PASSWORD", pw, "password; read from standard input when omitted");
  auto* passwd = app.add_subcommand("passwd", "change an account's password");
  passwd->add_option("JID", jid, "bare JID, user@host")->required();
  passwd->add_option("PASSWORD", pw, "password; read from standard input when omitted");
  auto* deluser = app.add_subcommand("deluser", "remove an account");
  deluser->add_option("JID", jid, "bare JID, user@host")->required();
  auto* list = app.add_subcommand("list", "list accounts, one JID a line");
  list->add_option("HOST", host, "only this host");
  std::string file;
  auto* exporter = app.add_subcommand(
      "export", "write every account, its documents and offline messages as XEP-0227 XML");
  exporter->add_option("FILE", file, "output file; - for standard output")->required();
  auto* importer = app.add_subcommand(
      "import", "read a XEP-0227 file (as written by export) into the configured storage");
  importer->add_option("FILE", file, "input file; - for standard input")->required();

  auto* plugin = app.add_subcommand("plugin", "manage the plugins of the running server");
  plugin->require_subcommand(1);
  std::string plugin_name;
  std::optional<std::string> plugin_host;
  auto* plugin_list = plugin->add_subcommand("list", "loaded plugins: name host kind version file");
  std::vector<CLI::App*> plugin_verbs;
  for (const char* verb : {"load", "unload", "reload"}) {
    auto* sub = plugin->add_subcommand(verb, std::string(verb) + " a plugin, globally or for HOST");
    sub->add_option("NAME", plugin_name, "plugin name")->required();
    sub->add_option("HOST", plugin_host, "virtual host (default: every host)");
    plugin_verbs.push_back(sub);
  }

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::Success& e) {
      return app.exit(e);  // --help, --version
    } catch (const CLI::ParseError& e) {
      throw Failure{std::string(e.what()) + " (see stanzactl --help)", 2};
    }

    auto config = stanzad::config::load(config_file);
    const auto socket = config.data_dir / "control.sock";
    // Tells a running server what happened to an account (plugins hear user/created or
    // user/deleted); nothing to tell when none runs.
    auto notify = [&](const std::string& what, const std::string& jid) {
      auto reply = stanzad::ctl::control(socket, "user " + what + " " + jid);
      if (reply && !reply->ok) std::cerr << "stanzactl: the server said: " << reply->error << "\n";
    };
    std::uint32_t iterations = config.limits.scram_iterations;

    // Opened once the arguments are known to be good.
    std::unique_ptr<Storage> store;
    auto open_store = [&] { store = stanzad::storage::open(config); };
    if (adduser->parsed()) {
      Account a = account(config, jid);
      std::string secret = password(pw);
      open_store();
      if (store->create(a.host, a.username, secret, iterations) == Storage::Result::exists) {
        fail("user " + a.jid() + " already exists");
      }
      std::cout << "created user " << a.jid() << "\n";
      notify("created", a.jid());
    } else if (passwd->parsed()) {
      Account a = account(config, jid);
      std::string secret = password(pw);
      open_store();
      if (store->set_password(a.host, a.username, secret, iterations) ==
          Storage::Result::not_found) {
        fail("no user " + a.jid());
      }
      std::cout << "changed password of " << a.jid() << "\n";
    } else if (deluser->parsed()) {
      Account a = account(config, jid);
      open_store();
      if (store->remove(a.host, a.username) == Storage::Result::not_found) {
        fail("no user " + a.jid());
      }
      std::cout << "deleted user " << a.jid() << "\n";
      notify("deleted", a.jid());
    } else if (plugin->parsed()) {
      std::string command = "plugin list";
      for (auto* sub : plugin_verbs) {
        if (sub->parsed()) {
          command = "plugin " + sub->get_name() + " " + plugin_name;
          if (plugin_host) command += " " + *plugin_host;
        }
      }
      (void)plugin_list;
      auto reply = stanzad::ctl::control(socket, command);
      if (!reply) fail("no stanzad is running with " + socket.string());
      std::cout << reply->body;
      if (!reply->ok) fail(reply->error);
    } else if (list->parsed()) {
      std::string only;
      if (host) {
        auto prepped = stanzad::xmpp::Jid::prep_domain(*host);
        if (!prepped) fail("'" + *host + "' is not a valid host name");
        if (!is_host(config, *prepped))
          fail(*prepped + " is not a host in " + config.source.string());
        only = *prepped;
      }
      open_store();
      for (const auto& j : store->list(only)) std::cout << j << "\n";
    } else if (exporter->parsed()) {
      open_store();
      stanzad::storage::PortableCounts n;
      if (file == "-") {
        n = stanzad::storage::export_xep0227(*store, config.hosts, std::cout);
      } else {
        // Written next to the target and renamed: a failed export leaves no half file.
        std::string tmp = file + ".tmp";
        {
          std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
          if (!out) fail(tmp + ": cannot create");
          n = stanzad::storage::export_xep0227(*store, config.hosts, out);
          out.close();
          if (!out) fail(tmp + ": cannot write");
        }
        if (std::rename(tmp.c_str(), file.c_str()) != 0) fail(file + ": cannot rename " + tmp);
      }
      std::cerr << "exported " << n.users << " users, " << n.documents << " documents, "
                << n.offline << " offline messages, " << n.conversations << " conversations, "
                << n.messages << " archived messages, " << n.media << " media from "
                << store->describe() << "\n";
    } else if (importer->parsed()) {
      open_store();
      stanzad::storage::PortableCounts n;
      if (file == "-") {
        n = stanzad::storage::import_xep0227(*store, config.hosts, std::cin);
      } else {
        std::ifstream in(file, std::ios::binary);
        if (!in) fail(file + ": cannot open");
        n = stanzad::storage::import_xep0227(*store, config.hosts, in);
      }
      std::cout << "imported " << n.users << " users, " << n.documents << " documents, "
                << n.offline << " offline messages, " << n.conversations << " conversations, "
                << n.messages << " archived messages, " << n.media << " media into "
                << store->describe() << "\n";
    }
    std::cout.flush();
    if (!std::cout) fail("cannot write to standard output");
    return 0;
  } catch (const Failure& f) {
    std::cerr << "stanzactl: " << one_line(f.message) << "\n";
    return f.code;
  } catch (const std::exception& e) {
    std::cerr << "stanzactl: " << one_line(e.what()) << "\n";
    return 1;
  }
}
