// This node's side of the replica calls (Node.get, coordinatePut, replicate in
// schema/dynkv.capnp): what the RPC service does once it has decoded a request, and what
// server-driven coordination does for this node's own replica without a round trip. One
// implementation, so that a replica answers the same whichever way it is asked.
#pragma once

#include <kj/async.h>

#include <optional>
#include <string>
#include <string_view>

#include "membership.h"
#include "hint-store.h"
#include "versioned-store.h"

namespace dynkv::storaged {

class BackgroundAdmission;  // admission.h
class TransferManager;      // transfer.h

class LocalReplica {
 public:
  LocalReplica(VersionedStore& store, HintStore& hints, Membership& membership,
               TransferManager* transfers, BackgroundAdmission* admission = nullptr);
  // All must outlive it. transfers null: every partition is readable. admission: where the
  // latency of each get, coordinatePut and replicate goes, as a foreground sample (from the
  // call until the store has answered, a write's wait for its group commit included); null:
  // nowhere.

  MapSnapshot observe(uint64_t senderVersion);
  // The map to answer by, after noting the sender's: a sender with an older map still gets an
  // answer (the reply's version tells it to refresh); one with a newer map tells us to.

  StorageKey storageKey(const PartitionMap& map, std::string_view ns, std::string_view key);
  // Throws "invalid argument" (FAILED) when the key breaks a limit, or if `map` is empty.

  kj::Promise<std::optional<Object>> get(StorageKey key);
  // The local copy; for a partition still streaming in, merged with a previous owner's copy
  // (TransferManager::readThrough), failing OVERLOADED if no previous owner answers. Only the
  // local read is a foreground sample.

  kj::Promise<Object> coordinatePut(StorageKey key, WriteContext context,
                                    std::optional<std::string> value, int64_t nowMicros,
                                    uint64_t writeId);
  // Mints a version of write `writeId` over `context` with this node's actor and stores it
  // (VersionedStore::coordinatePut; value nullopt: a tombstone). Throws "invalid argument"
  // when the value breaks a limit.

  kj::Promise<void> replicate(StorageKey key, Object object, uint64_t hintFor);
  // Stores sync(local, object), or, with hintFor != 0, keeps it as a hint for that owner.

 private:
  VersionedStore& store_;
  HintStore& hints_;
  Membership& membership_;
  TransferManager* transfers_;
  BackgroundAdmission* admission_;

  template <typename Func>
  auto timed(Func&& operation) -> decltype(operation());
};

}  // namespace dynkv::storaged
