// XEP-0227 export and import; see portable.hpp and docs/storage.md for the mapping.
#include "storage/portable.hpp"

#include <algorithm>
#include <charconv>
#include <iostream>
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
  return counts;
}

}  // namespace stanzad::storage
