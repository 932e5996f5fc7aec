// A node's identity: its id and the incarnation epoch minted when its data directory was
// created. Together they are the node's DVV actor, so a node whose data was wiped comes back
// as a new actor and never reuses a counter (DESIGN.md, "Versioning").
#pragma once

#include <string>

#include "dvv.h"
#include "engine.h"

namespace dynkv::storaged {

struct Identity {
  std::string name;  // the name the node was created with (its advertised address by default)
  Actor actor;       // actor.node is the node id
  bool created = false;  // minted by this start: the data directory was empty (new, or wiped)
};

Identity loadOrCreateIdentity(StorageEngine& engine, const std::string& name, uint64_t nodeId,
                              int64_t nowMicros);
// Returns the identity stored in the engine's META table, creating it (with epoch =
// nowMicros, and `created` set) on first start: a data directory that was wiped starts again as
// a new incarnation, so its new dots never collide with ones it minted before (Riak's kv679). A stored identity with another name is kept, and a warning logged:
// the data belongs to that node.

}  // namespace dynkv::storaged
