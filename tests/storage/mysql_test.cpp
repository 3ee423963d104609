// MySQL/MariaDB-specific storage tests: moving a server from SQLite, schema versions, and
// MariaDB going away and coming back while messages are stored.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "storage/async.hpp"
#include "storage/migrations.hpp"
#include "storage/portable.hpp"
#include "storage_common.hpp"

namespace stanzad::storage {
namespace {

using namespace std::chrono_literals;
using testing::mysql_options;
using testing::temp_dir;
using Hash = xmpp::sasl::Hash;

TEST(MysqlStorage, MovesAServerFromSqliteWithNothingLost) {
  auto dir = temp_dir();
  auto sqlite = testing::make_storage("sqlite", dir);
  const std::vector<std::string> hosts{"localhost", "example.org"};
  for (int i = 0; i < 20; ++i) {
    std::string user = "user" + std::to_string(i);
    const std::string& host = hosts[i % 2];
    ASSERT_EQ(sqlite->create(host, user, "pw" + user, 4096), Storage::Result::ok);
    sqlite->put(host, user, "roster", "",
                "<query xmlns='jabber:iq:roster' ver='" + std::to_string(i) +
                    "'><item jid='friend@localhost' subscription='both'/></query>");
    sqlite->put(host, user, "vcard", "", "<vCard xmlns='vcard-temp'><FN>User</FN></vCard>");
    sqlite->put(host, user, "private", "storage:bookmarks", "<storage xmlns='storage:bookmarks'/>");
    sqlite->put(host, user, "push", "device", std::string("\x00\x01\x02 raw", 7));
    sqlite->put(host, user, "notes", "plain", "not xml < at all");
    for (int k = 0; k < i % 3; ++k) {
      sqlite->offline_push(host, user,
                           "<message from='a@localhost' to='" + user + "@" + host + "'><body>" +
                               std::to_string(k) + " &amp; more</body></message>");
    }
  }
  // Archives: a one-to-one chat and a group, with delivery status, and media metadata.
  auto direct = sqlite->conversation(ConversationKind::direct,
                                     Storage::direct_name("user0@localhost", "user2@localhost"));
  auto group = sqlite->conversation(ConversationKind::group, "room@groups.localhost");
  sqlite->set_participant(group, "user0@localhost", Role::owner);
  sqlite->set_participant(group, "user2@localhost", Role::member);
  for (int i = 1; i <= 250; ++i) {
    ArchivedMessage m;
    m.conversation = i % 5 == 0 ? direct : group;
    m.time_us = 1'700'000'000'000'000 + i;
    m.sender = "user0@localhost/phone";
    m.stanza_id = "s" + std::to_string(i);
    m.body = "line " + std::to_string(i) + " <&> \u00e9t\u00e9 ";
    m.payload = "<message type='groupchat'><body>line</body></message>";
    auto seq = sqlite->archive(m);
    if (i % 7 == 0) sqlite->set_status(m.conversation, seq, "user2@localhost", Delivery::read);
  }
  sqlite->media_put({"m1", "user0@localhost", "caf\u00e9.jpg", 1234, "image/jpeg", 42, "/srv/m1"});

  std::stringstream exported;
  auto n = export_xep0227(*sqlite, hosts, exported);
  EXPECT_EQ(n.conversations, 2u);
  EXPECT_EQ(n.messages, 250u);
  EXPECT_EQ(n.media, 1u);
  EXPECT_EQ(n.users, 20u);
  EXPECT_EQ(n.documents, 100u);

  Storage mysql(std::make_unique<MysqlBackend>(mysql_options()));
  std::stringstream in(exported.str());
  auto m = import_xep0227(mysql, hosts, in);
  EXPECT_EQ(m.users, n.users);
  EXPECT_EQ(m.documents, n.documents);
  EXPECT_EQ(m.offline, n.offline);

  // Compare through the API: the same accounts, keys, documents and queued messages.
  EXPECT_EQ(mysql.list(), sqlite->list());
  for (const auto& jid : sqlite->list()) {
    auto at = jid.find('@');
    std::string user = jid.substr(0, at), host = jid.substr(at + 1);
    for (Hash h : {Hash::sha1, Hash::sha256}) {
      auto a = sqlite->credentials(host, user, h), b = mysql.credentials(host, user, h);
      ASSERT_TRUE(a && b);
      EXPECT_EQ(a->salt, b->salt);
      EXPECT_EQ(a->iterations, b->iterations);
      EXPECT_EQ(a->stored_key, b->stored_key);
      EXPECT_EQ(a->server_key, b->server_key);
    }
    auto creds = mysql.credentials(host, user, Hash::sha256);
    EXPECT_TRUE(xmpp::sasl::verify_password(*creds, "pw" + user));
    auto da = sqlite->documents(host, user), db = mysql.documents(host, user);
    ASSERT_EQ(da.size(), db.size());
    for (std::size_t i = 0; i < da.size(); ++i) {
      EXPECT_EQ(da[i].store, db[i].store);
      EXPECT_EQ(da[i].key, db[i].key);
      if (da[i].store == "push" || da[i].store == "notes") {
        EXPECT_EQ(da[i].value, db[i].value);
      }
    }
    EXPECT_EQ(sqlite->offline_count(host, user), mysql.offline_count(host, user));
  }
  EXPECT_EQ(m.messages, 250u);
  auto conversations = mysql.conversations();
  ASSERT_EQ(conversations.size(), 2u);
  for (const auto& c : sqlite->conversations()) {
    auto id = mysql.find_conversation(c.kind, c.name);
    ASSERT_TRUE(id);
    auto a = sqlite->history(c.id, Page{std::nullopt, 0, 1000});
    auto b = mysql.history(*id, Page{std::nullopt, 0, 1000});
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].seq, b[i].seq);
      EXPECT_EQ(a[i].time_us, b[i].time_us);
      EXPECT_EQ(a[i].body, b[i].body);
      EXPECT_EQ(a[i].payload, b[i].payload);
      EXPECT_EQ(a[i].stanza_id, b[i].stanza_id);
    }
  }
  EXPECT_EQ(mysql.media_get("m1")->filename, "caf\u00e9.jpg");
  // A second import would renumber the archives: refused before anything is written.
  std::stringstream twice(exported.str());
  EXPECT_THROW(import_xep0227(mysql, hosts, twice), PortableError);
  // And as a whole: exporting the MariaDB copy gives the very same document.
  std::stringstream again;
  export_xep0227(mysql, hosts, again);
  EXPECT_EQ(again.str(), exported.str());
  sqlite.reset();
  std::filesystem::remove_all(dir);
}

TEST(MysqlStorage, RefusesANewerSchema) {
  auto o = mysql_options();
  { Storage s(std::make_unique<MysqlBackend>(o)); }
  {
    Storage s(std::make_unique<MysqlBackend>(o));
    EXPECT_EQ(s.schema_version(), mysql_migrations().back().version);
  }
  // Mark the database as coming from a future stanzad.
  std::string cmd = "mariadb --no-defaults -h127.0.0.1 -P" + std::to_string(o.port) +
                    " -ustanzad -pstanzad-test " + o.database +
                    " -e \"INSERT INTO schema_version VALUES (9, '0009_future', 0)\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  try {
    MysqlBackend b(o);
    FAIL() << "opened a database from the future";
  } catch (const StorageError& e) {
    EXPECT_EQ(e.kind, ErrorKind::schema);
    EXPECT_NE(std::string(e.what()).find(
                  "database schema version 9 is newer than this stanzad (knows " +
                  std::to_string(mysql_migrations().back().version) + "); upgrade stanzad"),
              std::string::npos)
        << e.what();
  }
}

TEST(MysqlStorage, UnreachableServerIsUnavailable) {
  auto o = mysql_options();
  o.port = 1;  // nothing listens there
  try {
    MysqlBackend b(o);
    FAIL() << "connected to nothing";
  } catch (const StorageError& e) {
    EXPECT_EQ(e.kind, ErrorKind::unavailable) << e.what();
    EXPECT_EQ(stanza_condition(e.kind), "internal-server-error");
    EXPECT_NE(std::string(e.what()).find("mysql stanzad@127.0.0.1:1/"), std::string::npos);
  }
  o = mysql_options();
  o.password = "wrong";
  EXPECT_THROW(MysqlBackend b(o), StorageError);
}

// A COMMIT on a connection the server dropped mid-transaction must fail, never look like it
// succeeded: Connector/C++ 1.1's own commit() ignores the error (an acknowledged write was lost
// once in storage_mysql_fault before transaction control went through plain statements).
TEST(MysqlStorage, CommitOnAKilledConnectionFails) {
  auto o = mysql_options();
  MysqlBackend b(o);
  auto c = b.connect();
  c->begin();
  {
    Use put(*c, Sql::kv_put);
    put->text(1, "localhost")
        .text(2, "romeo")
        .text(3, "test")
        .text(4, "k")
        .blob(5, "v")
        .integer(6, 1);
    put->run();
  }
  // Another client kills every connection to this test's database (ours is the only one).
  std::string kill = "mariadb --no-defaults -N -h127.0.0.1 -P" + std::to_string(o.port) +
                     " -ustanzad -pstanzad-test -e \"SELECT CONCAT('KILL ', id, ';') FROM "
                     "information_schema.processlist WHERE db = '" +
                     o.database + "'\" | mariadb --no-defaults -h127.0.0.1 -P" +
                     std::to_string(o.port) + " -ustanzad -pstanzad-test";
  ASSERT_EQ(std::system(kill.c_str()), 0);
  EXPECT_THROW(c->commit(), StorageError);
  EXPECT_TRUE(c->broken());
  // Nothing of the transaction is there.
  auto fresh = b.connect();
  Use get(*fresh, Sql::kv_get);
  get->text(1, "localhost").text(2, "romeo").text(3, "test").text(4, "k");
  EXPECT_FALSE(get->next());
}

// MariaDB is killed (SIGKILL) and restarted while a writer archives messages steadily: every
// acknowledged message is in the archive afterwards; writes during the outage fail with
// ErrorKind::unavailable; the store recovers by itself. Uses its own MariaDB instance.
TEST(MysqlFault, KilledAndRestartedWhileStoring) {
  const char* script = std::getenv("STANZAD_TEST_MARIADB_SCRIPT");
  const char* dir = std::getenv("STANZAD_TEST_FAULT_DIR");
  const char* port = std::getenv("STANZAD_TEST_FAULT_PORT");
  ASSERT_TRUE(script && dir && port) << "run through ctest (storage_mysql_fault)";
  auto sh = [&](const std::string& what) {
    std::string cmd = std::string("bash ") + script + " " + what + " " + dir + " " + port;
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(sh("fresh"), 0);
  struct Stop {
    std::function<int(const std::string&)> sh;
    ~Stop() { sh("stop"); }
  } stop{sh};

  auto o = mysql_options("fault");
  o.port = static_cast<std::uint16_t>(std::atoi(port));
  o.connect_timeout = 2s;
  o.timeout = 5s;
  Storage s(std::make_unique<MysqlBackend>(o));
  auto c = s.conversation(ConversationKind::group, "fault@groups.localhost");

  std::mutex mutex;
  std::vector<std::pair<std::int64_t, std::string>> acked;  // seq, stanza id
  std::vector<StorageError> errors;
  std::atomic<bool> stop_writing{false};
  std::atomic<int> sent{0};
  std::thread writer([&] {
    for (int i = 0; !stop_writing; ++i) {
      ArchivedMessage m;
      m.conversation = c;
      m.sender = "romeo@localhost";
      m.stanza_id = "m" + std::to_string(i);
      m.body = "message " + std::to_string(i);
      m.payload = "<message/>";
      s.archive_async(m, [&, id = m.stanza_id](WriteResult r) {
        std::lock_guard lock(mutex);
        if (r.ok()) {
          acked.emplace_back(r.value, id);
        } else {
          errors.push_back(*r.error);
        }
      });
      ++sent;
      std::this_thread::sleep_for(1ms);
    }
  });
  auto count = [&] {
    std::lock_guard lock(mutex);
    return std::make_pair(acked.size(), errors.size());
  };
  auto wait_until = [&](auto pred, std::chrono::seconds limit) {
    auto end = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
    return pred();
  };
  ASSERT_TRUE(wait_until([&] { return count().first >= 200; }, 30s));
  ASSERT_EQ(sh("kill"), 0);
  std::size_t acked_at_kill = count().first;
  // Writes now fail, quickly and clearly; reads too.
  ASSERT_TRUE(wait_until([&] { return count().second >= 20; }, 30s));
  try {
    s.exists("localhost", "romeo");
    ADD_FAILURE() << "read succeeded with MariaDB down";
  } catch (const StorageError& e) {
    EXPECT_EQ(e.kind, ErrorKind::unavailable) << e.what();
  }
  {
    // As the server does it: on a worker, completing on the shard, with the stanza error.
    net::Shard shard(0);
    shard.start();
    net::WorkerPool pool(1);
    std::promise<std::pair<bool, Outcome<bool>>> got;
    submit(
        pool, shard, [&] { return s.exists("localhost", "romeo"); },
        [&](Outcome<bool> r) {
          got.set_value({shard.is_current(), std::move(r)});
        });
    auto [on_shard, r] = got.get_future().get();
    EXPECT_TRUE(on_shard);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(stanza_condition(r.error->kind), "internal-server-error") << r.error->what();
    EXPECT_EQ(stanza_error_type(r.error->kind), "wait");
    pool.stop();
    shard.stop();
    shard.join();
  }
  std::size_t acked_down = count().first;
  EXPECT_LE(acked_down - acked_at_kill, 2000u);  // only those committed before the kill landed
  ASSERT_EQ(sh("start"), 0);
  // Recovers by itself: new acknowledgements arrive without anyone reopening anything.
  ASSERT_TRUE(wait_until([&] { return count().first >= acked_down + 200; }, 60s))
      << "no recovery after restart";
  stop_writing = true;
  writer.join();
  // Storage drains its queue before the checks (a sync write waits behind everything queued).
  s.put("localhost", "romeo", "test", "barrier", "x");

  std::lock_guard lock(mutex);
  for (const auto& e : errors) {
    EXPECT_EQ(e.kind, ErrorKind::unavailable) << e.what();
    EXPECT_NE(std::string(e.what()).find("mysql stanzad@127.0.0.1"), std::string::npos);
  }
  EXPECT_GT(errors.size(), 0u);
  auto history = s.history(c, Page{std::nullopt, 0, 1000000});
  std::map<std::int64_t, std::string> stored;
  for (const auto& m : history) stored[m.seq] = m.stanza_id;
  for (const auto& [seq, id] : acked) {
    auto it = stored.find(seq);
    ASSERT_NE(it, stored.end()) << "acknowledged seq " << seq << " lost";
    EXPECT_EQ(it->second, id);
  }
  // Gap-free: every sequence number from 1 to the last is there.
  ASSERT_FALSE(history.empty());
  EXPECT_EQ(history.back().seq, static_cast<std::int64_t>(history.size()));
  std::cerr << "sent " << sent << ", acknowledged " << acked.size() << ", failed " << errors.size()
            << ", stored " << history.size() << "\n";
}

}  // namespace
}  // namespace stanzad::storage
