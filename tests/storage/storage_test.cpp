// The storage API's conformance suite, run against every backend (SQLite and MariaDB).
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "storage/migrations.hpp"
#include "storage/portable.hpp"
#include "storage/sqlite.hpp"
#include "storage_common.hpp"

namespace stanzad::storage {
namespace {

using testing::make_storage;
using testing::temp_dir;
using Hash = xmpp::sasl::Hash;
using Result = Storage::Result;
constexpr std::uint32_t kIterations = 4096;

class StorageTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    store_ = make_storage(GetParam(), dir_);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  ArchivedMessage msg(std::int64_t conversation, std::string body, std::string id = {}) {
    ArchivedMessage m;
    m.conversation = conversation;
    m.sender = "romeo@localhost/balcony";
    m.stanza_id = id.empty() ? "id-" + body : id;
    m.body = body;
    m.payload = "<message><body>" + body + "</body></message>";
    return m;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Storage> store_;
};

TEST_P(StorageTest, AccountsLikeAccountStore) {
  Storage& s = *store_;
  EXPECT_FALSE(s.exists("localhost", "romeo"));
  EXPECT_EQ(s.create("localhost", "romeo", "secret", kIterations), Result::ok);
  EXPECT_EQ(s.create("localhost", "romeo", "other", kIterations), Result::exists);
  EXPECT_EQ(s.create("example.org", "romeo", "x", kIterations), Result::ok);
  EXPECT_TRUE(s.exists("localhost", "romeo"));
  auto before = s.credentials("localhost", "romeo", Hash::sha256);
  ASSERT_TRUE(before);
  EXPECT_TRUE(xmpp::sasl::verify_password(*before, "secret"));
  EXPECT_EQ(before->iterations, kIterations);
  EXPECT_EQ(s.set_password("localhost", "romeo", "new", 5000), Result::ok);
  auto sha1 = s.credentials("localhost", "romeo", Hash::sha1);
  ASSERT_TRUE(sha1);
  EXPECT_TRUE(xmpp::sasl::verify_password(*sha1, "new"));
  EXPECT_EQ(sha1->iterations, 5000u);
  EXPECT_EQ(s.set_password("localhost", "nobody", "x", kIterations), Result::not_found);
  EXPECT_EQ(s.list(), (std::vector<std::string>{"romeo@example.org", "romeo@localhost"}));
  EXPECT_EQ(s.list("localhost"), std::vector<std::string>{"romeo@localhost"});
  s.put("localhost", "romeo", "roster", "", "<query xmlns='jabber:iq:roster'/>");
  s.offline_push("localhost", "romeo", "<message/>");
  EXPECT_EQ(s.remove("localhost", "romeo"), Result::ok);
  EXPECT_EQ(s.remove("localhost", "romeo"), Result::not_found);
  EXPECT_FALSE(s.credentials("localhost", "romeo", Hash::sha1));
  EXPECT_TRUE(s.documents("localhost", "romeo").empty());  // removed with the account
  EXPECT_EQ(s.offline_count("localhost", "romeo"), 0u);
  EXPECT_THROW(s.create("localhost", "juliet", "pw", 0), std::invalid_argument);
}

// put_async and erase_async commit in the order queued, between synchronous writes.
TEST_P(StorageTest, AsyncDocumentWritesCommitInOrder) {
  Storage& s = *store_;
  std::promise<std::vector<WriteResult>> all;
  std::vector<WriteResult> results;
  std::mutex mutex;
  auto done = [&](WriteResult r) {
    std::lock_guard lock(mutex);
    results.push_back(r);
    if (results.size() == 3) all.set_value(results);
  };
  s.put_async("localhost", "romeo", "roster", "last", "1\nfirst", done);
  s.erase_async("localhost", "romeo", "roster", "last", done);
  s.put_async("localhost", "romeo", "roster", "last", "2\nsecond", done);
  auto r = all.get_future().get();
  ASSERT_EQ(3u, r.size());
  for (const auto& one : r) EXPECT_TRUE(one.ok());
  EXPECT_EQ(1, r[1].value);  // erase_async: one document removed
  EXPECT_EQ(s.get("localhost", "romeo", "roster", "last").value_or(""), "2\nsecond");
  std::promise<WriteResult> none;
  s.erase_async("localhost", "juliet", "roster", "last", [&](WriteResult w) { none.set_value(w); });
  EXPECT_EQ(0, none.get_future().get().value);
  s.erase("localhost", "romeo", "roster", "last");
  EXPECT_FALSE(s.get("localhost", "romeo", "roster", "last"));
}

TEST_P(StorageTest, BinarySafeDocuments) {
  Storage& s = *store_;
  std::string binary("\0\x01\xff\xfe zero\0bytes", 16);
  EXPECT_FALSE(s.get("localhost", "romeo", "vcard", ""));
  s.put("localhost", "romeo", "vcard", "", "<vCard xmlns='vcard-temp'/>");
  s.put("localhost", "romeo", "push", "app1", binary);
  s.put("localhost", "romeo", "push", "app0", "");
  s.put("localhost", "juliet", "push", "app1", "other user");
  EXPECT_EQ(*s.get("localhost", "romeo", "push", "app1"), binary);
  EXPECT_EQ(*s.get("localhost", "romeo", "push", "app0"), "");
  s.put("localhost", "romeo", "push", "app0", "replaced");
  auto items = s.items("localhost", "romeo", "push");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0], (std::pair<std::string, std::string>{"app0", "replaced"}));
  EXPECT_EQ(items[1].second, binary);
  EXPECT_EQ(s.documents("localhost", "romeo").size(), 3u);
  EXPECT_TRUE(s.erase("localhost", "romeo", "push", "app0"));
  EXPECT_FALSE(s.erase("localhost", "romeo", "push", "app0"));
  EXPECT_EQ(s.items("localhost", "romeo", "push").size(), 1u);
  // Case and bytes matter in keys (normalized by the caller), as in SQLite.
  s.put("localhost", "romeo", "pep", "Node", "A");
  s.put("localhost", "romeo", "pep", "node", "a");
  EXPECT_EQ(*s.get("localhost", "romeo", "pep", "Node"), "A");
}

TEST_P(StorageTest, ConversationsAndParticipants) {
  Storage& s = *store_;
  auto name = Storage::direct_name("romeo@localhost", "juliet@localhost");
  EXPECT_EQ(name, Storage::direct_name("juliet@localhost", "romeo@localhost"));
  EXPECT_FALSE(s.find_conversation(ConversationKind::direct, name));
  auto direct = s.conversation(ConversationKind::direct, name);
  EXPECT_EQ(s.conversation(ConversationKind::direct, name), direct);
  auto group = s.conversation(ConversationKind::group, "room@groups.localhost");
  EXPECT_NE(direct, group);
  s.set_participant(group, "romeo@localhost", Role::owner);
  s.set_participant(group, "juliet@localhost", Role::member);
  s.set_participant(group, "juliet@localhost", Role::admin);
  auto people = s.participants(group);
  ASSERT_EQ(people.size(), 2u);
  EXPECT_EQ(people[0].jid, "juliet@localhost");
  EXPECT_EQ(people[0].role, Role::admin);
  EXPECT_EQ(people[1].role, Role::owner);
  EXPECT_TRUE(s.remove_participant(group, "juliet@localhost"));
  EXPECT_FALSE(s.remove_participant(group, "juliet@localhost"));
  EXPECT_EQ(s.participants(group).size(), 1u);
}

TEST_P(StorageTest, SequenceNumbersArePerConversationAndGapFree) {
  Storage& s = *store_;
  auto a = s.conversation(ConversationKind::group, "a@groups.localhost");
  auto b = s.conversation(ConversationKind::group, "b@groups.localhost");
  EXPECT_EQ(s.last_seq(a), 0);
  EXPECT_EQ(s.archive(msg(a, "one")), 1);
  EXPECT_EQ(s.archive(msg(a, "two")), 2);
  EXPECT_EQ(s.archive(msg(b, "other")), 1);
  EXPECT_EQ(s.archive(msg(a, "three")), 3);
  EXPECT_EQ(s.last_seq(a), 3);
  // An unknown conversation fails alone, even in a batch with good writes.
  std::vector<std::future<WriteResult>> results;
  for (int i = 0; i < 50; ++i) {
    auto p = std::make_shared<std::promise<WriteResult>>();
    results.push_back(p->get_future());
    s.archive_async(msg(i == 25 ? 999999 : a, "async" + std::to_string(i)),
                    [p](WriteResult r) { p->set_value(std::move(r)); });
  }
  std::set<std::int64_t> seqs;
  for (int i = 0; i < 50; ++i) {
    WriteResult r = results[i].get();
    if (i == 25) {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error->kind, ErrorKind::internal);
    } else {
      ASSERT_TRUE(r.ok()) << r.error->what();
      seqs.insert(r.value);
    }
  }
  EXPECT_EQ(seqs.size(), 49u);
  EXPECT_EQ(*seqs.begin(), 4);
  EXPECT_EQ(*seqs.rbegin(), 52);
  auto all = s.history(a, Page{std::nullopt, std::nullopt, 1000});
  ASSERT_EQ(all.size(), 52u);
  for (std::size_t i = 0; i < all.size(); ++i)
    EXPECT_EQ(all[i].seq, static_cast<std::int64_t>(i + 1));
}

// A batch that interleaves conversations numbers each one's messages in the order they were
// queued, with one bump per conversation (and multi-row inserts on MySQL) doing the work.
TEST_P(StorageTest, InterleavedConversationsInOneBatch) {
  Storage& s = *store_;
  std::vector<std::int64_t> convs;
  for (const char* name : {"x@groups.localhost", "y@groups.localhost", "z@groups.localhost"})
    convs.push_back(s.conversation(ConversationKind::group, name));
  s.archive(msg(convs[1], "before"));
  constexpr int kWrites = 301;  // not a power of two: every statement size on MySQL
  std::vector<std::future<WriteResult>> results;
  for (int i = 0; i < kWrites; ++i) {
    auto p = std::make_shared<std::promise<WriteResult>>();
    results.push_back(p->get_future());
    auto c = convs[static_cast<std::size_t>((i + i / 7) % 3)];
    auto m = msg(c, "m" + std::to_string(i));
    m.time_us = 1'700'000'000'000'000 + i;
    s.archive_async(std::move(m), [p](WriteResult r) { p->set_value(std::move(r)); });
  }
  std::map<std::int64_t, std::int64_t> next = {{convs[0], 1}, {convs[1], 2}, {convs[2], 1}};
  for (int i = 0; i < kWrites; ++i) {
    auto r = results[i].get();
    ASSERT_TRUE(r.ok()) << r.error->what();
    EXPECT_EQ(r.value, next[convs[static_cast<std::size_t>((i + i / 7) % 3)]]++) << i;
  }
  for (auto c : convs) {
    auto all = s.history(c, Page{std::nullopt, std::nullopt, 1000});
    ASSERT_EQ(static_cast<std::int64_t>(all.size()), next[c] - 1);
    for (std::size_t k = 0; k < all.size(); ++k) {
      EXPECT_EQ(all[k].seq, static_cast<std::int64_t>(k + 1));
      if (k > 0 && all[k - 1].body != "before") {
        EXPECT_LT(all[k - 1].time_us, all[k].time_us);
      }
    }
    EXPECT_EQ(s.last_seq(c), next[c] - 1);
  }
  auto one = s.history(convs[0], Page{std::nullopt, 0, 1});
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].body, "m0");
  EXPECT_EQ(one[0].payload, "<message><body>m0</body></message>");
  EXPECT_EQ(one[0].stanza_id, "id-m0");
  EXPECT_EQ(one[0].sender, "romeo@localhost/balcony");
  EXPECT_EQ(one[0].time_us, 1'700'000'000'000'000);
}

TEST_P(StorageTest, HistoryPages) {
  Storage& s = *store_;
  auto c = s.conversation(ConversationKind::direct,
                          Storage::direct_name("romeo@localhost", "juliet@localhost"));
  for (int i = 1; i <= 120; ++i) {
    auto m = msg(c, "message " + std::to_string(i));
    m.time_us = 1'700'000'000'000'000 + i;
    s.archive(m);
  }
  auto latest = s.history(c);  // 50 by default
  ASSERT_EQ(latest.size(), 50u);
  EXPECT_EQ(latest.front().seq, 71);
  EXPECT_EQ(latest.back().seq, 120);
  EXPECT_EQ(latest.back().body, "message 120");
  EXPECT_EQ(latest.back().payload, "<message><body>message 120</body></message>");
  EXPECT_EQ(latest.back().sender, "romeo@localhost/balcony");
  EXPECT_EQ(latest.back().stanza_id, "id-message 120");
  EXPECT_EQ(latest.back().time_us, 1'700'000'000'000'120);
  auto before = s.history(c, Page{71, std::nullopt, 10});
  ASSERT_EQ(before.size(), 10u);
  EXPECT_EQ(before.front().seq, 61);
  EXPECT_EQ(before.back().seq, 70);
  auto after = s.history(c, Page{std::nullopt, 115, 10});
  ASSERT_EQ(after.size(), 5u);
  EXPECT_EQ(after.front().seq, 116);
  auto first = s.history(c, Page{std::nullopt, 0, 3});
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first.front().seq, 1);
  EXPECT_TRUE(s.history(c, Page{1, std::nullopt, 10}).empty());
  EXPECT_TRUE(s.history(999999).empty());
}

TEST_P(StorageTest, FullTextSearch) {
  Storage& s = *store_;
  auto c = s.conversation(ConversationKind::group, "verona@groups.localhost");
  auto other = s.conversation(ConversationKind::group, "mantua@groups.localhost");
  s.archive(msg(c, "wherefore art thou romeo"));
  s.archive(msg(c, "parting is such sweet sorrow"));
  s.archive(msg(c, "Romeo Montague and Juliet Capulet"));
  s.archive(msg(other, "romeo was here too"));
  auto hits = s.search(c, "romeo");
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].seq, 1);
  EXPECT_EQ(hits[1].seq, 3);
  auto both = s.search(c, "juliet romeo");
  ASSERT_EQ(both.size(), 1u);
  EXPECT_EQ(both[0].seq, 3);
  EXPECT_EQ(s.search(c, "sorrow").size(), 1u);
  EXPECT_TRUE(s.search(c, "tybalt").empty());
  EXPECT_TRUE(s.search(c, "   ").empty());
  EXPECT_NO_THROW(s.search(c, "\"unbalanced * AND OR ( -x +y"));  // input is never syntax
  EXPECT_NO_THROW(s.search(c, "don\u2019t \u201cquoted\u201d it's \u2026 NEAR(a b) x:y"));
  EXPECT_EQ(s.search(c, "ROMEO!").size(), 2u);
  EXPECT_EQ(s.search(c, "is").size(), 1u);  // short words: LIKE on MySQL
  auto limited = s.search(c, "romeo", 1);
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0].seq, 3);  // the newest
}

// Group-committed messages are searchable as soon as they are acknowledged (on SQLite the index
// is written once per transaction, schema 0003), and a write that failed left nothing behind.
TEST_P(StorageTest, SearchFindsEveryCommittedMessageOfABatch) {
  Storage& s = *store_;
  auto c = s.conversation(ConversationKind::group, "capulet@groups.localhost");
  constexpr int kWrites = 300, kBad = 150;
  std::vector<std::future<WriteResult>> results;
  for (int i = 0; i < kWrites; ++i) {
    auto p = std::make_shared<std::promise<WriteResult>>();
    results.push_back(p->get_future());
    s.archive_async(msg(i == kBad ? 999999 : c, "banner" + std::to_string(i) + " nurse"),
                    [p](WriteResult r) { p->set_value(std::move(r)); });
  }
  for (int i = 0; i < kWrites; ++i) {
    auto r = results[i].get();
    ASSERT_EQ(r.ok(), i != kBad) << i;
    if (i == kBad) continue;
    auto hit = s.search(c, "banner" + std::to_string(i));
    ASSERT_EQ(hit.size(), 1u) << i;
    EXPECT_EQ(hit[0].seq, r.value);
  }
  EXPECT_TRUE(s.search(c, "banner" + std::to_string(kBad)).empty());
  EXPECT_EQ(s.search(c, "nurse", 1000).size(), static_cast<std::size_t>(kWrites - 1));
  if (GetParam() == "sqlite") {
    Database db(dir_ / "stanzad.sqlite");  // the index holds exactly the messages' words
    EXPECT_NO_THROW(db.exec("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"));
  }
}

TEST_P(StorageTest, DeliveryStatusOnlyMovesForward) {
  Storage& s = *store_;
  auto c = s.conversation(ConversationKind::group, "room@groups.localhost");
  auto seq = s.archive(msg(c, "hello"));
  s.set_status(c, seq, "juliet@localhost", Delivery::sent);
  s.set_status(c, seq, "nurse@localhost", Delivery::sent);
  s.set_status(c, seq, "juliet@localhost", Delivery::read);
  s.set_status(c, seq, "juliet@localhost", Delivery::delivered);  // late: ignored
  s.set_status(c, seq, "nurse@localhost", Delivery::delivered);
  auto st = s.status(c, seq);
  ASSERT_EQ(st.size(), 2u);
  EXPECT_EQ(st[0].recipient, "juliet@localhost");
  EXPECT_EQ(st[0].delivery, Delivery::read);
  EXPECT_EQ(st[1].delivery, Delivery::delivered);
  EXPECT_GT(st[1].updated_us, 0);
  EXPECT_TRUE(s.status(c, seq + 1).empty());
}

TEST_P(StorageTest, OfflineQueue) {
  Storage& s = *store_;
  EXPECT_TRUE(s.offline_pop_all("localhost", "juliet").empty());
  std::vector<std::int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(
        s.offline_push("localhost", "juliet", "<message id='" + std::to_string(i) + "'/>"));
  }
  s.offline_push("localhost", "romeo", "<message id='r'/>");
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_EQ(s.offline_count("localhost", "juliet"), 5u);
  EXPECT_EQ(s.offline_peek("localhost", "juliet").size(), 5u);
  auto popped = s.offline_pop_all("localhost", "juliet");
  ASSERT_EQ(popped.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(popped[i].stanza, "<message id='" + std::to_string(i) + "'/>");
    EXPECT_EQ(popped[i].id, ids[i]);
  }
  EXPECT_EQ(s.offline_count("localhost", "juliet"), 0u);
  EXPECT_EQ(s.offline_count("localhost", "romeo"), 1u);
  EXPECT_EQ(s.offline_clear("localhost", "romeo"), 1u);
  EXPECT_EQ(s.offline_count("localhost", "romeo"), 0u);
}

TEST_P(StorageTest, MediaMetadata) {
  Storage& s = *store_;
  Media m{"abc123", "romeo@localhost", "balcony.jpg", 123456, "image/jpeg", 1000, "/srv/up/abc123"};
  s.media_put(m);
  s.media_put({"def456", "romeo@localhost", "rose.png", 42, "image/png", 2000, "/srv/up/def456"});
  auto got = s.media_get("abc123");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->filename, "balcony.jpg");
  EXPECT_EQ(got->size, 123456);
  EXPECT_EQ(got->content_type, "image/jpeg");
  EXPECT_EQ(got->created_us, 1000);
  EXPECT_EQ(got->path, "/srv/up/abc123");
  auto mine = s.media_of("romeo@localhost");
  ASSERT_EQ(mine.size(), 2u);
  EXPECT_EQ(mine[0].id, "abc123");
  EXPECT_TRUE(s.media_remove("abc123"));
  EXPECT_FALSE(s.media_remove("abc123"));
  EXPECT_FALSE(s.media_get("abc123"));
}

TEST_P(StorageTest, GroupCommitCompletesEveryWriteAfterCommit) {
  Storage& s = *store_;
  auto c = s.conversation(ConversationKind::group, "busy@groups.localhost");
  constexpr int kWriters = 4, kEach = 250;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<WriteResult>> f;
      for (int i = 0; i < kEach; ++i) {
        auto p = std::make_shared<std::promise<WriteResult>>();
        f.push_back(p->get_future());
        s.archive_async(msg(c, "t" + std::to_string(t) + "m" + std::to_string(i)),
                        [p](WriteResult r) { p->set_value(std::move(r)); });
      }
      for (auto& x : f) ok += x.get().ok();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWriters * kEach);
  EXPECT_EQ(s.last_seq(c), kWriters * kEach);
}

TEST_P(StorageTest, PortableExportImportRoundTrip) {
  Storage& s = *store_;
  ASSERT_EQ(s.create("localhost", "romeo", "pw", kIterations), Result::ok);
  s.put("localhost", "romeo", "roster", "",
        "<query xmlns='jabber:iq:roster'><item jid='juliet@localhost'/></query>");
  s.put("localhost", "romeo", "push", "app", std::string("\0bin", 4));
  s.offline_push("localhost", "romeo", "<message to='romeo@localhost'><body>hi</body></message>");
  std::stringstream out;
  auto n = export_xep0227(s, {"localhost"}, out);
  EXPECT_EQ(n.users, 1u);
  EXPECT_EQ(n.documents, 2u);
  EXPECT_EQ(n.offline, 1u);
  EXPECT_NE(out.str().find(
                "<scram-credentials xmlns=\"urn:xmpp:pie:0#scram\" mechanism=\"SCRAM-SHA-256\">"),
            std::string::npos);

  auto dir2 = temp_dir();
  auto other = make_storage(GetParam(), dir2);
  std::stringstream in(out.str());
  import_xep0227(*other, {"localhost"}, in);
  auto creds = other->credentials("localhost", "romeo", Hash::sha256);
  ASSERT_TRUE(creds);
  EXPECT_TRUE(xmpp::sasl::verify_password(*creds, "pw"));
  EXPECT_EQ(*other->get("localhost", "romeo", "push", "app"), std::string("\0bin", 4));
  std::stringstream again;
  export_xep0227(*other, {"localhost"}, again);
  EXPECT_EQ(again.str(), out.str());
  std::stringstream bad(
      "<server-data xmlns='urn:xmpp:pie:0'><host jid='elsewhere'/></server-data>");
  EXPECT_THROW(import_xep0227(*other, {"localhost"}, bad), PortableError);
  other.reset();
  std::filesystem::remove_all(dir2);
}

INSTANTIATE_TEST_SUITE_P(Backends, StorageTest, ::testing::Values("sqlite", "mysql"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace stanzad::storage

namespace stanzad::storage {
namespace {

// With the writer stuck behind another process's write lock, writes beyond queue-limit are
// refused at once with overloaded (resource-constraint); the accepted ones commit afterwards.
// A database of schema 2 (full-text index by trigger) upgraded to 0003 (index at commit): its
// messages stay searchable, new ones are indexed, and the index matches the messages.
TEST(StorageSqlite, UpgradeFromTheFullTextTrigger) {
  auto dir = temp_dir();
  {
    Database db(dir / "stanzad.sqlite");
    auto all = sqlite_migrations();
    ASSERT_GE(all.size(), 3u);
    ASSERT_EQ(db.migrate(all.first(2)), 2);
    db.exec(
        "INSERT INTO conversations (id, kind, name, created_at, last_seq)"
        " VALUES (1, 2, 'old@groups.localhost', 0, 1);"
        "INSERT INTO messages (conversation_id, seq, ts, sender, stanza_id, body, payload)"
        " VALUES (1, 1, 0, 'romeo@localhost', 'a', 'an older balcony', x'3c6d2f3e')");
  }
  {
    Storage s(std::make_unique<SqliteBackend>(dir / "stanzad.sqlite", SqliteBackend::Options{}));
    EXPECT_EQ(s.schema_version(), sqlite_migrations().back().version);
    ArchivedMessage m;
    m.conversation = 1;
    m.sender = "juliet@localhost";
    m.stanza_id = "b";
    m.body = "a newer balcony";
    EXPECT_EQ(s.archive(m), 2);
    EXPECT_EQ(s.search(1, "balcony").size(), 2u);
    EXPECT_EQ(s.search(1, "older").size(), 1u);
    EXPECT_EQ(s.search(1, "newer").size(), 1u);
  }
  {
    Database db(dir / "stanzad.sqlite");
    EXPECT_NO_THROW(db.exec("INSERT INTO messages_fts (messages_fts) VALUES ('integrity-check')"));
  }
  std::filesystem::remove_all(dir);
}

TEST(StorageSqlite, QueueLimitRefusesWithResourceConstraint) {
  auto dir = testing::temp_dir();
  SqliteBackend::Options o;
  o.queue_limit = 10;
  {
    Storage s(std::make_unique<SqliteBackend>(dir / "stanzad.sqlite", o));
    Database other(dir / "stanzad.sqlite");
    other.exec("BEGIN IMMEDIATE");  // the writer's BEGIN IMMEDIATE now waits (busy timeout)
    std::mutex mutex;
    std::condition_variable cv;
    int ok = 0, overloaded = 0, done = 0;
    for (int i = 0; i < 100; ++i) {
      s.put_async("localhost", "romeo", "s", std::to_string(i), "v", [&](WriteResult r) {
        std::lock_guard lock(mutex);
        ++done;
        if (r.ok()) {
          ++ok;
        } else if (r.error->kind == ErrorKind::overloaded) {
          ++overloaded;
          EXPECT_EQ(stanza_condition(r.error->kind), "resource-constraint");
        }
        cv.notify_all();
      });
    }
    {
      std::unique_lock lock(mutex);
      EXPECT_GE(overloaded, 80);
      EXPECT_EQ(ok, 0);
    }
    other.exec("COMMIT");
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return done == 100; });
    EXPECT_EQ(ok + overloaded, 100);
    EXPECT_EQ(s.items("localhost", "romeo", "s").size(), static_cast<std::size_t>(ok));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stanzad::storage
