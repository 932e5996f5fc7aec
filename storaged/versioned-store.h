// The node's versioned objects (DESIGN.md, "Versioning" and "Local storage"): DVV objects in
// the engine's OBJECTS table under their storage key, written through the group commit. This
// is where the dotted-version-vector rules meet the disk: a coordinator write mints a dot of
// this node's actor over the local copy; every other copy that arrives (replication, read
// repair, hinted handoff, transfer) is merged with sync(), so no write is lost to another.
#pragma once

#include <kj/async.h>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dvv.h"
#include "engine.h"
#include "group-commit.h"
#include "limits.h"
#include "storage-key.h"

namespace dynkv::storaged {

class HashTrees;  // hash-trees.h
class HintStore;  // hint-store.h

class VersionedStore {
 public:
  VersionedStore(GroupCommit& commits, const HintStore& hints, HashTrees& trees,
                 const Actor& self, const Limits& limits);
  // `commits`, `hints` and `trees` must outlive the store; `self` is this node's actor (its id
  // and the epoch of its data directory), the one whose dots coordinatePut mints. Every object
  // written or removed goes through `trees` in its transaction.

  const Actor& self() const { return self_; }
  const Limits& limits() const { return limits_; }
  HashTrees& trees() { return trees_; }

  std::optional<Object> get(const StorageKey& key);

  struct HeldCopies {
    std::optional<Object> own;                        // in this node's store
    std::vector<std::pair<uint64_t, Object>> hinted;  // owner id, the hint kept for it
  };
  HeldCopies heldCopies(const StorageKey& key);
  // Every copy of `key` held here, each apart and read in one transaction: what `get` merges.
  // For `admin inspect`, which says which is which.
  // What this node knows of the key: its own copy synced with the hints it holds for other
  // owners of the key (a fallback's read answers with the writes it stands in for); nullopt
  // if none. Sees every committed write, none still queued.

  kj::Promise<Object> coordinatePut(StorageKey key, Versioning kind, WriteContext context,
                                    std::optional<std::string> value, int64_t nowMicros,
                                    uint64_t writeId = 0);
  // The coordinator replica's write: dvv coordinatePut with this node's actor over the local
  // copy as the batch finds it, with a counter above every one this incarnation has minted for
  // any key (a collected tombstone must not let a counter come round again: dvv.h). That
  // high-water mark is leased in blocks of COUNTER_LEASE in the META table, written in the
  // batch that crosses the lease, so a restart resumes above anything minted before it.
  // Refuses, with a message, a write to a key whose stored object has another kind, or one
  // that would leave more than Limits::MAX_SIBLINGS siblings (the message says to read,
  // resolve and write with the context); a refusal fails only this write. Resolves to the
  // stored object once committed.

  kj::Promise<bool> retract(StorageKey key, Dot dot, int64_t nowMicros);
  // Takes back the version `dot` that coordinatePut minted here, once its writer is known to
  // have given up on the answer (dvv retract: the sibling goes, the vv keeps covering it; a
  // tombstone if it was the only one). Resolves to whether the stored object still held it.

  kj::Promise<void> replicate(StorageKey key, Object object);
  // Stores sync(local, object) once committed (nothing is written if that adds nothing).
  // Refuses an object whose kind differs from the stored one's.

  kj::Promise<Object> syncEncoded(std::string storageKey, Object object);
  // replicate() under an encoded storage key (anti-entropy's), resolving to what is stored
  // now: sync(local, object).

  std::vector<std::optional<Object>> ownCopies(const std::vector<std::string>& storageKeys);
  // This node's own copy of each encoded storage key (nullopt: none), leaving out the hints it
  // holds for other owners: what anti-entropy compares and hands over.

  kj::Promise<bool> reap(std::string storageKey, uint64_t digest);
  // Tombstone collection: removes the object under `storageKey` if it is only tombstones and its
  // causal digest is still `digest` (a write since keeps it). Resolves to whether it did.

  kj::Promise<size_t> dropPartition(uint32_t partition, uint64_t expectedRoot);
  // Deletes the partition's objects (a partition handed over), in one transaction, if what it
  // holds still makes a tree of root `expectedRoot` (the root its hand-over was confirmed at; a
  // write that arrived since keeps them all). Resolves to how many it deleted.

  struct PartitionChunk {
    std::vector<std::pair<StorageKey, Object>> entries;
    std::string next;   // the last storage key returned: pass it back as `after`
    bool done = false;  // no keys of the partition after `next`
  };
  PartitionChunk scanPartition(uint32_t partition, const std::string& after, size_t maxBytes);
  // The partition's objects in key order, starting after the storage key `after` (empty: from
  // the start), until about maxBytes of stored data (at least one object). Only this node's own
  // copies: hints held for others are not part of a partition it hands over.

 private:
  void storeMinted(BatchTransaction& txn, const std::string& engineKey, const Object& result);
  // Writes an object holding a dot this node just minted, with the counter lease the dot needs.

  GroupCommit& commits_;
  const HintStore& hints_;
  HashTrees& trees_;
  Actor self_;
  Limits limits_;
  uint64_t usedCounters_ = 0;  // the highest counter minted (or leased before a restart)
  uint64_t counterLease_ = 0;  // what META says may have been minted, committed

 public:
  static constexpr uint64_t COUNTER_LEASE = 1 << 16;
};

struct SyncedObject {
  Object object;         // sync(stored, incoming)
  bool existed = false;  // something was stored under the key before
  bool changed = false;  // the merge differs from what was stored, and was written
};
SyncedObject syncStored(WriteTransaction& txn, Table table, Bytes key, const Object& incoming,
                        const Limits& limits);
// The one merge rule for every copy of an object that arrives, shared by the versioned store
// (replicate) and the hint store (a hint merged with the one already held): stores
// sync(stored, incoming) under `key` of `table` unless that is what is stored. Throws (FAILED)
// before writing anything if both exist and their kinds (vector clock, last-write-wins) differ.

}  // namespace dynkv::storaged
