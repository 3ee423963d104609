// XEP-0227 (Portable Import/Export Format for XMPP-IM Servers, v1.1): move accounts, their
// SCRAM credentials, documents and offline messages between servers and backends.
#pragma once

#include <cstddef>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <vector>

#include "storage/storage.hpp"

namespace stanzad::storage {

// Documents without an XEP-0227 element, and anything that is not XML, go in this namespace.
inline constexpr const char* kPortableNs = "urn:stanzad:pie:0";

struct PortableCounts {
  std::size_t users = 0, documents = 0, offline = 0;
  std::size_t conversations = 0, messages = 0, media = 0;
};

struct PortableError : std::runtime_error {
  using runtime_error::runtime_error;
};

// Writes every account of `hosts` (all their documents and queued offline messages, which
// stay queued) as one <server-data/> document, followed by the archives (conversations with
// participants, messages and delivery status) and media metadata in
// <archive xmlns='urn:stanzad:pie:0'>. Builds the document in memory.
PortableCounts export_xep0227(Storage& storage, const std::vector<std::string>& hosts,
                              std::ostream& out);

// Reads a <server-data/> document: each user's credentials replace any existing account's,
// documents are written over, offline messages are appended in order; conversations are
// recreated with the same sequence numbers (one that already holds messages here refuses the
// file). Hosts not in `hosts` are refused (PortableError) before anything is written. Throws
// PortableError, StorageError.
PortableCounts import_xep0227(Storage& storage, const std::vector<std::string>& hosts,
                              std::istream& in);

}  // namespace stanzad::storage
