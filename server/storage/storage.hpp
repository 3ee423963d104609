// The storage API for the core and plugins: accounts, documents, archives, delivery status,
// offline queues and media metadata, on SQLite or MySQL/MariaDB (docs/storage.md).
#pragma once

#include <boost/asio/post.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/error.hpp"
#include "xmpp/sasl.hpp"

namespace stanzad::config {
struct Config;
}

namespace stanzad::storage {

class Backend;

enum class ConversationKind { direct = 1, group = 2 };
enum class Role { member = 0, moderator = 1, admin = 2, owner = 3 };
// Ordered: a status only moves forward (a late "delivered" never undoes "read").
enum class Delivery { sent = 0, delivered = 1, read = 2 };

struct ArchivedMessage {
  std::int64_t conversation = 0;  // Storage::conversation()
  std::int64_t seq = 0;           // assigned at commit: 1, 2, 3… per conversation
  std::int64_t time_us = 0;       // Unix time in microseconds; 0 on archive() = now
  std::string sender;             // JID of the author
  std::string stanza_id;          // XEP-0359 id, for de-duplication and MAM ids
  std::string body;               // plain text, indexed for search()
  std::string payload;            // the stanza as serialized XML
};

// A page of history, always returned oldest first. Neither bound: the newest `limit`.
// before: the newest `limit` with seq < before. after: the oldest `limit` with seq > after.
struct Page {
  std::optional<std::int64_t> before, after;
  std::size_t limit = 50;
};

struct Document {
  std::string store, key, value;
};

struct ConversationInfo {
  std::int64_t id = 0;
  ConversationKind kind = ConversationKind::direct;
  std::string name;
  std::int64_t last_seq = 0;
};

struct Participant {
  std::string jid;
  Role role = Role::member;
};

struct Status {
  std::string recipient;
  Delivery delivery = Delivery::sent;
  std::int64_t updated_us = 0;
};

struct OfflineMessage {
  std::int64_t id = 0;  // increasing: the order of offline_push
  std::int64_t time_us = 0;
  std::string stanza;
};

struct Media {
  std::string id, owner, filename;
  std::int64_t size = 0;
  std::string content_type;
  std::int64_t created_us = 0;
  std::string path;
};

// The result of an asynchronous write, given only after its transaction committed (durable)
// or failed (then nothing of it was written, or, for an unavailable error during COMMIT, the
// write may or may not have landed: it was not acknowledged either way).
struct WriteResult {
  std::int64_t value = 0;  // archive: the sequence number; offline_push: the id
  std::optional<StorageError> error;
  bool ok() const { return !error; }
};

// Runs on the storage's writer thread: keep it short (post elsewhere, as post_to() does).
using Completion = std::function<void(WriteResult)>;

// A Completion that runs `handler(WriteResult)` on `executor` (a shard's io_context).
template <class Executor, class Handler>
Completion post_to(Executor executor, Handler handler) {
  return [executor, handler = std::move(handler)](WriteResult r) mutable {
    boost::asio::post(executor, [handler = std::move(handler), r = std::move(r)]() mutable {
      handler(std::move(r));
    });
  };
}

// Thread-safe. The synchronous methods block (a pool of connections inside): call them from a
// worker (net::WorkerPool::submit), never on a shard's event loop. Writes go through one
// writer thread that commits whatever is queued in one transaction (group commit); a write
// returns, or its Completion fires, only after that commit. Every method throws (or
// completes with) StorageError; ErrorKind tells the stanza error to answer with.
//
// host and user are normalized (nameprep / nodeprep) by the caller; JIDs are bare or full
// JIDs in their normalized string form.
class Storage {
 public:
  explicit Storage(std::unique_ptr<Backend> backend);  // see open()
  virtual ~Storage();                                  // drains the queued writes, then closes
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  std::string describe() const;  // "sqlite /path/stanzad.sqlite", "mysql user@host:port/db"
  int schema_version() const;

  // --- accounts and SCRAM keys (RFC 5802, RFC 7677): never a password.
  enum class Result { ok, exists, not_found };
  // iterations must be at least 1 (else std::invalid_argument).
  Result create(std::string_view host, std::string_view username, std::string_view password,
                std::uint32_t iterations = 4096);
  Result set_password(std::string_view host, std::string_view username, std::string_view password,
                      std::uint32_t iterations = 4096);
  // Also removes the account's documents and offline messages.
  Result remove(std::string_view host, std::string_view username);
  bool exists(std::string_view host, std::string_view username);
  std::optional<xmpp::sasl::ScramCredentials> credentials(std::string_view host,
                                                          std::string_view username,
                                                          xmpp::sasl::Hash hash);
  // "user@host", sorted; every host when `host` is empty.
  std::vector<std::string> list(std::string_view host = {});
  // Stores keys as they are (import of XEP-0227 <scram-credentials>); replaces an account.
  void put_credentials(std::string_view host, std::string_view username,
                       const xmpp::sasl::ScramCredentials& sha1,
                       const xmpp::sasl::ScramCredentials& sha256);

  // --- per-user documents: opaque values keyed by (host, user, store, key). Stores are named
  // by their users, e.g. "roster", "vcard", "private", "pep", "push".
  std::optional<std::string> get(std::string_view host, std::string_view user,
                                 std::string_view store, std::string_view key);
  void put(std::string_view host, std::string_view user, std::string_view store,
           std::string_view key, std::string_view value);
  void put_async(std::string_view host, std::string_view user, std::string_view store,
                 std::string_view key, std::string_view value, Completion done);
  bool erase(std::string_view host, std::string_view user, std::string_view store,
             std::string_view key);
  // done's value: 1 if a document was removed, 0 if there was none.
  void erase_async(std::string_view host, std::string_view user, std::string_view store,
                   std::string_view key, Completion done);
  // (key, value) of one store, by key.
  std::vector<std::pair<std::string, std::string>> items(std::string_view host,
                                                         std::string_view user,
                                                         std::string_view store);
  std::vector<Document> documents(std::string_view host, std::string_view user);  // every store

  // --- conversations and their archives.
  // The id of the conversation, created if missing. direct: name = direct_name(a, b);
  // group: name = the room's bare JID.
  std::int64_t conversation(ConversationKind kind, std::string_view name);
  std::optional<std::int64_t> find_conversation(ConversationKind kind, std::string_view name);
  static std::string direct_name(std::string_view a, std::string_view b);  // order-free
  void set_participant(std::int64_t conversation, std::string_view jid, Role role);
  bool remove_participant(std::int64_t conversation, std::string_view jid);
  std::vector<Participant> participants(std::int64_t conversation);  // by JID
  std::vector<ConversationInfo> conversations();                     // every one, by id

  // Appends to the archive; returns the sequence number assigned at commit.
  std::int64_t archive(const ArchivedMessage& message);
  void archive_async(ArchivedMessage message, Completion done);
  std::vector<ArchivedMessage> history(std::int64_t conversation, const Page& page = {});
  // Messages whose body holds every word of `words` (SQLite FTS5 / MySQL FULLTEXT; a LIKE
  // match for words MySQL does not index), newest `limit`, returned oldest first.
  std::vector<ArchivedMessage> search(std::int64_t conversation, std::string_view words,
                                      std::size_t limit = 50);
  std::int64_t last_seq(std::int64_t conversation);  // 0 when empty

  // --- per-recipient delivery status of archived messages.
  // updated_us: when it changed; 0 = now.
  void set_status(std::int64_t conversation, std::int64_t seq, std::string_view recipient,
                  Delivery delivery, std::int64_t updated_us = 0);
  void set_status_async(std::int64_t conversation, std::int64_t seq, std::string_view recipient,
                        Delivery delivery, Completion done);
  std::vector<Status> status(std::int64_t conversation, std::int64_t seq);  // by recipient
  // Every status in a conversation: (seq, status), by seq then recipient.
  std::vector<std::pair<std::int64_t, Status>> statuses(std::int64_t conversation);

  // --- offline queues, in order of arrival.
  std::int64_t offline_push(std::string_view host, std::string_view user, std::string_view stanza);
  void offline_push_async(std::string_view host, std::string_view user, std::string_view stanza,
                          Completion done);
  // Everything queued, oldest first, removed in the same transaction.
  std::vector<OfflineMessage> offline_pop_all(std::string_view host, std::string_view user);
  std::vector<OfflineMessage> offline_peek(std::string_view host, std::string_view user);
  // offline_peek through the writer's queue: it sees every write queued before it (an
  // offline_push_async not committed yet), and removes nothing.
  std::vector<OfflineMessage> offline_peek_queued(std::string_view host, std::string_view user);
  // Removes the queue's messages up to `id` (offline_peek's), behind what is queued.
  void offline_delete_upto_async(std::string_view host, std::string_view user, std::int64_t id,
                                 Completion done);
  std::size_t offline_count(std::string_view host, std::string_view user);  // for quotas
  std::size_t offline_clear(std::string_view host, std::string_view user);

  // --- media metadata (the bytes live in files at `path`).
  void media_put(const Media& media);  // replaces one with the same id
  std::optional<Media> media_get(std::string_view id);
  bool media_remove(std::string_view id);
  std::vector<Media> media_of(std::string_view owner);  // oldest first
  std::vector<Media> media_all();                       // by id

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The backend the configuration names (<storage>, docs/configuration.md), migrated to this
// build's schema. Throws StorageError (a newer schema is refused with ErrorKind::schema).
std::unique_ptr<Storage> open(const config::Config& config);

}  // namespace stanzad::storage
