#include "identity.h"

#include <kj/debug.h>
#include <sstream>

namespace dynkv::storaged {

namespace {

const kj::byte IDENTITY_KEY[] = {'i', 'd', 'e', 'n', 't', 'i', 't', 'y'};

}  // namespace

Identity loadOrCreateIdentity(StorageEngine& engine, const std::string& name, uint64_t nodeId,
                              int64_t nowMicros) {
  Identity identity;
  bool found = false;
  engine.read([&](ReadTransaction& txn) {
    KJ_IF_MAYBE(bytes, txn.get(Table::META, kj::arrayPtr(IDENTITY_KEY, sizeof(IDENTITY_KEY)))) {
      // Stored as text "<node id> <epoch> <name>" so an operator can read it with mdb_dump.
      std::istringstream in(std::string(bytes->asChars().begin(), bytes->size()));
      in >> identity.actor.node >> identity.actor.epoch;
      in.get();
      std::getline(in, identity.name);
      KJ_REQUIRE(!in.fail() || in.eof(), "corrupt node identity in the data directory");
      found = true;
    }
  });
  if (found) {
    if (identity.name != name) {
      KJ_LOG(WARNING, "data directory belongs to another node name; keeping its identity",
             identity.name, name);
    }
    return identity;
  }
  identity.name = name;
  identity.actor = Actor{nodeId, uint64_t(nowMicros)};
  identity.created = true;
  auto text = kj::str(identity.actor.node, ' ', identity.actor.epoch, ' ', name.c_str());
  engine.write([&](WriteTransaction& txn) {
    txn.put(Table::META, kj::arrayPtr(IDENTITY_KEY, sizeof(IDENTITY_KEY)), text.asBytes());
  });
  return identity;
}

}  // namespace dynkv::storaged
