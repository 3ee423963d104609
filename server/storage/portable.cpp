// XEP-0227 export and import; see portable.hpp and docs/storage.md for the mapping.
#include "storage/portable.hpp"

#include <algorithm>
#include <charconv>
#include <future>
#include <iostream>
#include <memory>
#include <pugixml.hpp>
#include <sstream>

#include "xmpp/base64.hpp"

namespace stanzad::storage {

namespace {

namespace sasl = xmpp::sasl;

constexpr const char* kPieNs = "urn:xmpp:pie:0";
constexpr const char* kScramNs = "urn:xmpp:pie:0#scram";

// Documents that XEP-0227 carries as the protocol's own element, by store and key.
struct Mapping {
  const char* store;
  const char* key;
  const char* name;
  const char* ns;
};
constexpr Mapping kMappings[] = {
    {"roster", "", "query", "jabber:iq:roster"},
    {"vcard", "", "vCard", "vcard-temp"},
};

// The single element `text` holds, or an empty node when it is not exactly one element.
pugi::xml_node parse_element(pugi::xml_document& doc, const std::string& text) {
  auto r = doc.load_buffer(text.data(), text.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!r) return {};
  pugi::xml_node found;
  for (auto n : doc.children()) {
    if (n.type() == pugi::node_element) {
      if (found) return {};
      found = n;
    } else if (n.type() != pugi::node_declaration) {
      return {};
    }
  }
  return found;
}

std::string serialize(pugi::xml_node n) {
  std::ostringstream out;
  n.print(out, "", pugi::format_raw | pugi::format_no_declaration);
  return out.str();
}

std::string b64(std::string_view bytes) { return xmpp::base64_encode(bytes); }

std::string unb64(pugi::xml_node n, const char* what) {
  std::string text = n.text().get();
  text.erase(std::remove_if(text.begin(), text.end(),
                            [](unsigned char c) { return std::isspace(c) != 0; }),
             text.end());
  auto bytes = xmpp::base64_decode(text);
  if (!bytes) throw PortableError(std::string("bad base64 in <") + what + ">");
  return *bytes;
}

void add_scram(pugi::xml_node user, const sasl::ScramCredentials& c, const char* mechanism) {
  auto s = user.append_child("scram-credentials");
  s.append_attribute("xmlns") = kScramNs;
  s.append_attribute("mechanism") = mechanism;
  s.append_child("iter-count").text() = std::to_string(c.iterations).c_str();
  s.append_child("salt").text() = b64(c.salt).c_str();
  s.append_child("server-key").text() = b64(c.server_key).c_str();
  s.append_child("stored-key").text() = b64(c.stored_key).c_str();
}

sasl::ScramCredentials read_scram(pugi::xml_node s, sasl::Hash hash) {
  sasl::ScramCredentials c;
  c.hash = hash;
  std::string count = s.child("iter-count").text().get();
  auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), c.iterations);
  if (ec != std::errc() || end != count.data() + count.size() || c.iterations == 0) {
    throw PortableError("bad <iter-count> '" + count + "'");
  }
  c.salt = unb64(s.child("salt"), "salt");
  c.server_key = unb64(s.child("server-key"), "server-key");
  c.stored_key = unb64(s.child("stored-key"), "stored-key");
  return c;
}

void add_document(pugi::xml_node user, const Document& d) {
  pugi::xml_document parsed;
  pugi::xml_node element = parse_element(parsed, d.value);
  for (const auto& m : kMappings) {
    if (d.store == m.store && d.key == m.key && element &&
        std::string_view(element.name()) == m.name &&
        std::string_view(element.attribute("xmlns").value()) == m.ns) {
      user.append_copy(element);
      return;
    }
  }
  auto doc = user.append_child("document");
  doc.append_attribute("xmlns") = kPortableNs;
  doc.append_attribute("store") = d.store.c_str();
  doc.append_attribute("key") = d.key.c_str();
  if (element && element.attribute("xmlns")) {
    doc.append_attribute("format") = "xml";
    doc.append_copy(element);
  } else {
    doc.append_attribute("format") = "base64";
    doc.text() = b64(d.value).c_str();
  }
}

struct UserData {
  std::string host, name;
  std::optional<sasl::ScramCredentials> sha1, sha256;
  std::vector<Document> documents;
  std::vector<std::string> offline;
};

UserData read_user(const std::string& host, pugi::xml_node user) {
  UserData u;
  u.host = host;
  u.name = user.attribute("name").value();
  if (u.name.empty()) throw PortableError("a <user> on " + host + " has no name");
  for (auto child : user.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    std::string_view ns = child.attribute("xmlns").value();
    if (name == "scram-credentials") {
      std::string_view mech = child.attribute("mechanism").value();
      if (mech == "SCRAM-SHA-1") {
        u.sha1 = read_scram(child, sasl::Hash::sha1);
      } else if (mech == "SCRAM-SHA-256") {
        u.sha256 = read_scram(child, sasl::Hash::sha256);
      }  // other mechanisms: stanzad has no use for them
      continue;
    }
    if (name == "offline-messages") {
      for (auto m : child.children()) {
        if (m.type() != pugi::node_element) continue;
        pugi::xml_document copy;
        auto e = copy.append_copy(m);
        // The stream's default namespace: stored stanzas do not repeat it.
        if (std::string_view(e.attribute("xmlns").value()) == "jabber:client") {
          e.remove_attribute("xmlns");
        }
        u.offline.push_back(serialize(e));
      }
      continue;
    }
    if (name == "document" && ns == kPortableNs) {
      Document d{child.attribute("store").value(), child.attribute("key").value(), {}};
      std::string_view format = child.attribute("format").value();
      if (format == "xml") {
        auto e = child.find_child([](pugi::xml_node n) { return n.type() == pugi::node_element; });
        if (!e) throw PortableError("an empty xml <document> for " + u.name + "@" + host);
        d.value = serialize(e);
      } else {
        d.value = unb64(child, "document");
      }
      u.documents.push_back(std::move(d));
      continue;
    }
    bool mapped = false;
    for (const auto& m : kMappings) {
      if (name == m.name && ns == m.ns) {
        u.documents.push_back({m.store, m.key, serialize(child)});
        mapped = true;
      }
    }
    if (!mapped) {
      std::cerr << "stanzactl: skipping <" << name << " xmlns='" << ns << "'> of " << u.name << "@"
                << host << ": not supported\n";
    }
  }
  if (!u.sha1 || !u.sha256) {
    throw PortableError(u.name + "@" + host +
                        ": needs SCRAM-SHA-1 and SCRAM-SHA-256 <scram-credentials> (stanzad "
                        "stores no passwords and cannot derive one key from the other)");
  }
  return u;
}

std::int64_t number(pugi::xml_node n, const char* attr) {
  std::string text = n.attribute(attr).value();
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    throw PortableError(std::string("bad number in <") + n.name() + " " + attr + "='" + text +
                        "'>");
  }
  return v;
}

constexpr const char* kKinds[] = {"", "direct", "group"};
constexpr const char* kDeliveries[] = {"sent", "delivered", "read"};

void export_archive(Storage& storage, pugi::xml_node root, PortableCounts& counts) {
  auto conversations = storage.conversations();
  auto media = storage.media_all();
  if (conversations.empty() && media.empty()) return;
  auto archive = root.append_child("archive");
  archive.append_attribute("xmlns") = kPortableNs;
  for (const auto& c : conversations) {
    auto conv = archive.append_child("conversation");
    conv.append_attribute("kind") = kKinds[static_cast<int>(c.kind)];
    conv.append_attribute("name") = c.name.c_str();
    for (const auto& p : storage.participants(c.id)) {
      auto e = conv.append_child("participant");
      e.append_attribute("jid") = p.jid.c_str();
      e.append_attribute("role") = static_cast<int>(p.role);
    }
    auto statuses = storage.statuses(c.id);
    auto next_status = statuses.begin();
    std::int64_t after = 0;
    for (;;) {
      auto page = storage.history(c.id, Page{std::nullopt, after, 1000});
      if (page.empty()) break;
      for (const auto& m : page) {
        auto e = conv.append_child("message");
        e.append_attribute("seq") = std::to_string(m.seq).c_str();
        e.append_attribute("time") = std::to_string(m.time_us).c_str();
        e.append_attribute("sender") = m.sender.c_str();
        e.append_attribute("id") = m.stanza_id.c_str();
        e.append_child("body").text() = m.body.c_str();
        e.append_child("payload").text() = b64(m.payload).c_str();
        while (next_status != statuses.end() && next_status->first < m.seq) ++next_status;
        for (; next_status != statuses.end() && next_status->first == m.seq; ++next_status) {
          auto st = e.append_child("status");
          st.append_attribute("recipient") = next_status->second.recipient.c_str();
          st.append_attribute("delivery") =
              kDeliveries[static_cast<int>(next_status->second.delivery)];
          st.append_attribute("time") = std::to_string(next_status->second.updated_us).c_str();
        }
        ++counts.messages;
        after = m.seq;
      }
    }
    ++counts.conversations;
  }
  for (const auto& m : media) {
    auto e = archive.append_child("media");
    e.append_attribute("id") = m.id.c_str();
    e.append_attribute("owner") = m.owner.c_str();
    e.append_attribute("filename") = m.filename.c_str();
    e.append_attribute("size") = std::to_string(m.size).c_str();
    e.append_attribute("content-type") = m.content_type.c_str();
    e.append_attribute("created") = std::to_string(m.created_us).c_str();
    e.append_attribute("path") = m.path.c_str();
    ++counts.media;
  }
}

struct ConversationData {
  ConversationKind kind;
  std::string name;
  std::vector<Participant> participants;
  std::vector<ArchivedMessage> messages;
  std::vector<std::pair<std::int64_t, Status>> statuses;
};

std::vector<ConversationData> read_archive(pugi::xml_node archive, std::vector<Media>& media) {
  std::vector<ConversationData> out;
  for (auto conv : archive.children("conversation")) {
    ConversationData d;
    std::string_view kind = conv.attribute("kind").value();
    if (kind == "direct") {
      d.kind = ConversationKind::direct;
    } else if (kind == "group") {
      d.kind = ConversationKind::group;
    } else {
      throw PortableError("bad conversation kind '" + std::string(kind) + "'");
    }
    d.name = conv.attribute("name").value();
    for (auto p : conv.children("participant")) {
      d.participants.push_back({p.attribute("jid").value(), static_cast<Role>(number(p, "role"))});
    }
    for (auto m : conv.children("message")) {
      ArchivedMessage a;
      a.seq = number(m, "seq");
      if (a.seq != static_cast<std::int64_t>(d.messages.size()) + 1) {
        throw PortableError("conversation '" + d.name + "': message seq " + std::to_string(a.seq) +
                            " out of order");
      }
      a.time_us = number(m, "time");
      a.sender = m.attribute("sender").value();
      a.stanza_id = m.attribute("id").value();
      a.body = m.child("body").text().get();
      a.payload = unb64(m.child("payload"), "payload");
      for (auto st : m.children("status")) {
        std::string_view delivery = st.attribute("delivery").value();
        auto it = std::find(std::begin(kDeliveries), std::end(kDeliveries), delivery);
        if (it == std::end(kDeliveries)) {
          throw PortableError("bad delivery '" + std::string(delivery) + "'");
        }
        d.statuses.emplace_back(
            a.seq, Status{st.attribute("recipient").value(),
                          static_cast<Delivery>(it - std::begin(kDeliveries)), number(st, "time")});
      }
      d.messages.push_back(std::move(a));
    }
    out.push_back(std::move(d));
  }
  for (auto m : archive.children("media")) {
    media.push_back({m.attribute("id").value(), m.attribute("owner").value(),
                     m.attribute("filename").value(), number(m, "size"),
                     m.attribute("content-type").value(), number(m, "created"),
                     m.attribute("path").value()});
  }
  return out;
}

}  // namespace

PortableCounts export_xep0227(Storage& storage, const std::vector<std::string>& hosts,
                              std::ostream& out) {
  PortableCounts counts;
  pugi::xml_document doc;
  auto decl = doc.append_child(pugi::node_declaration);
  decl.append_attribute("version") = "1.0";
  decl.append_attribute("encoding") = "UTF-8";
  auto root = doc.append_child("server-data");
  root.append_attribute("xmlns") = kPieNs;
  for (const auto& host : hosts) {
    auto h = root.append_child("host");
    h.append_attribute("jid") = host.c_str();
    for (const auto& jid : storage.list(host)) {
      std::string name = jid.substr(0, jid.rfind('@'));
      auto sha1 = storage.credentials(host, name, sasl::Hash::sha1);
      auto sha256 = storage.credentials(host, name, sasl::Hash::sha256);
      if (!sha1 || !sha256) continue;  // removed while exporting
      auto u = h.append_child("user");
      u.append_attribute("name") = name.c_str();
      add_scram(u, *sha1, "SCRAM-SHA-1");
      add_scram(u, *sha256, "SCRAM-SHA-256");
      for (const auto& d : storage.documents(host, name)) {
        add_document(u, d);
        ++counts.documents;
      }
      auto offline = storage.offline_peek(host, name);
      if (!offline.empty()) {
        auto list = u.append_child("offline-messages");
        for (const auto& m : offline) {
          pugi::xml_document parsed;
          auto e = parse_element(parsed, m.stanza);
          if (!e)
            throw PortableError(jid + ": offline message " + std::to_string(m.id) + " is not XML");
          auto copy = list.append_copy(e);
          if (!copy.attribute("xmlns")) copy.prepend_attribute("xmlns") = "jabber:client";
          ++counts.offline;
        }
      }
      ++counts.users;
    }
  }
  export_archive(storage, root, counts);
  doc.save(out, "  ", pugi::format_indent, pugi::encoding_utf8);
  if (!out) throw PortableError("cannot write the export");
  return counts;
}

PortableCounts import_xep0227(Storage& storage, const std::vector<std::string>& hosts,
                              std::istream& in) {
  pugi::xml_document doc;
  auto r = doc.load(in, pugi::parse_default | pugi::parse_ws_pcdata_single, pugi::encoding_utf8);
  if (!r) {
    throw PortableError(std::string("not well-formed XML at byte ") + std::to_string(r.offset) +
                        ": " + r.description());
  }
  auto root = doc.document_element();
  if (std::string_view(root.name()) != "server-data" ||
      std::string_view(root.attribute("xmlns").value()) != kPieNs) {
    throw PortableError(std::string("the root element must be <server-data xmlns='") + kPieNs +
                        "'>");
  }
  // Read and check everything first, so that a bad file writes nothing.
  std::vector<UserData> users;
  for (auto h : root.children("host")) {
    std::string host = h.attribute("jid").value();
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) {
      throw PortableError("host '" + host + "' is not configured here");
    }
    for (auto u : h.children("user")) users.push_back(read_user(host, u));
  }
  std::vector<ConversationData> conversations;
  std::vector<Media> media;
  for (auto archive : root.children("archive")) {
    if (std::string_view(archive.attribute("xmlns").value()) != kPortableNs) continue;
    auto more = read_archive(archive, media);
    for (auto& c : more) conversations.push_back(std::move(c));
  }
  for (const auto& c : conversations) {
    auto id = storage.find_conversation(c.kind, c.name);
    if (id && storage.last_seq(*id) != 0 && !c.messages.empty()) {
      throw PortableError("conversation '" + c.name +
                          "' already has messages here: its sequence numbers would change");
    }
  }

  PortableCounts counts;
  for (const auto& u : users) {
    storage.put_credentials(u.host, u.name, *u.sha1, *u.sha256);
    for (const auto& d : u.documents) {
      storage.put(u.host, u.name, d.store, d.key, d.value);
      ++counts.documents;
    }
    for (const auto& stanza : u.offline) {
      storage.offline_push(u.host, u.name, stanza);
      ++counts.offline;
    }
    ++counts.users;
  }
  for (auto& c : conversations) {
    auto id = storage.conversation(c.kind, c.name);
    for (const auto& p : c.participants) storage.set_participant(id, p.jid, p.role);
    // Queued together, committed together: one writer, in order, so the numbers come back
    // as they were.
    std::vector<std::future<WriteResult>> results;
    for (auto& m : c.messages) {
      m.conversation = id;
      auto promise = std::make_shared<std::promise<WriteResult>>();
      results.push_back(promise->get_future());
      storage.archive_async(m, [promise](WriteResult r) { promise->set_value(std::move(r)); });
    }
    for (std::size_t i = 0; i < results.size(); ++i) {
      WriteResult r = results[i].get();
      if (r.error) throw *r.error;
      if (r.value != c.messages[i].seq) {
        throw PortableError("conversation '" + c.name + "': message " +
                            std::to_string(c.messages[i].seq) + " got sequence number " +
                            std::to_string(r.value));
      }
      ++counts.messages;
    }
    for (const auto& [seq, st] : c.statuses) {
      storage.set_status(id, seq, st.recipient, st.delivery, st.updated_us);
    }
    ++counts.conversations;
  }
  for (const auto& m : media) {
    storage.media_put(m);
    ++counts.media;
  }
  return counts;
}

}  // namespace stanzad::storage
