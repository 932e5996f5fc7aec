// The hint store (DESIGN.md, "Request paths": sloppy quorum and hinted handoff; the paper's
// §4.6): writes this node accepted as a fallback, each kept for the owner it stands in for
// until handoff (hinted-handoff.h) delivers it.
//
// Hints are kept per owner, each owner's in storage-key order, so a holder hands them off owner
// by owner from a cursor of its own: one owner's backlog, however large, never stands in front
// of another's, and reading one owner's next hints costs what is read, whatever else is held.
// An owner that is down keeps its hints until it answers; one that has left the ring has its
// hints sent to the key's current owners (common/coordinator/hint-policy.h decides; the
// handoff loop stores what it cannot send yet as hints for those owners).
//
// A hint for a node that is not a member is refused before it gets here when the sender carried
// the same map version as ours (the service's replicate asks checkHintOwner, hint-policy.h);
// with another version it may name a node removed or joined since, and is accepted: while its
// owner is not in the map, hint rounds hand it to the key's current owners, so it is not kept
// for ever. The store itself keeps any owner it is given.
#pragma once

#include <kj/async.h>
#include <kj/function.h>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dvv.h"
#include "engine.h"
#include "group-commit.h"
#include "hint-policy.h"
#include "limits.h"
#include "storage-key.h"

namespace dynkv::storaged {

class HintStore {
 public:
  HintStore(GroupCommit& commits, const Limits& limits);
  // `commits` must outlive the store, which must be the only writer of Table::HINTS (it keeps
  // the per-owner counts in memory, rebuilt here from what is stored).
  //
  // Hints that an earlier version stored in its layout (all owners' hints for one key together)
  // are rewritten in the current one, in one transaction, before the constructor returns; it
  // throws, leaving them as they were, if that transaction fails.

  kj::Promise<void> storeHint(uint64_t ownerId, StorageKey key, Object object);
  // Keeps a write meant for `ownerId` (merged with any hint already held for the same owner and
  // key) until it can be handed off. Resolves once committed; refuses an object whose kind
  // differs from the held hint's.

  struct Hint {
    uint64_t ownerId;
    StorageKey key;
    Object object;
  };
  struct HintPage {
    std::vector<Hint> hints;
    std::string next;  // the storage key of the last hint returned (else `after`): the cursor
    bool end = false;  // the owner had no hints after `next` when read
  };
  HintPage hintsFor(uint64_t ownerId, const std::string& after, size_t max) const;
  // Up to `max` hints held for `ownerId`, in storage-key order, starting after the encoded
  // storage key `after` (empty: from the first). Reads only that owner's hints: O(max),
  // whatever else is held.

  static std::string storedKey(uint64_t ownerId, const std::string& storageKey);
  static Hint decodeStored(Bytes key, Bytes value, const Limits& limits);
  // A hint as kept in Table::HINTS: the key is [owner id: 8 bytes big-endian][encoded storage
  // key], the value objectToWords of the object. Decoding throws (FAILED) on a malformed key
  // or an object that objectFromBytes refuses (what a damaged data directory may hold).

  kj::Promise<void> removeHint(const Hint& delivered);
  // Deletes a delivered hint, unless it changed since it was read (then it stays for the next
  // round). Removing one that is not held changes nothing.

  std::vector<HintBacklog> hintBacklog() const;
  // How many hints are held for each owner that has any, by owner id. From memory: O(owners);
  // it counts committed hints only.

  uint64_t hintCount() const;
  // All hints held, for every owner.

  std::vector<uint32_t> hintedPartitions() const;
  // The partitions this node holds committed hints for, ascending. From memory: O(partitions).
  // Gossip publishes them (Member::hintedPartitions): hints are in no hash tree, so no
  // partition's tombstones are collected while anyone holds hints for it.

  void onPartitionsChanged(kj::Function<void()> listener) { listener_ = kj::mv(listener); }
  // Called after a commit that made hintedPartitions() gain or lose a partition.

  void mergeHeld(ReadTransaction& txn, const std::string& storageKey,
                 std::optional<Object>& into) const;
  // Syncs into `into` every hint held under the encoded storage key, for any owner (one lookup
  // per owner that has hints; usually none). A hint whose kind differs from `into`'s is left
  // out. For the versioned store's reads, in their transaction.

  std::vector<std::pair<uint64_t, Object>> held(ReadTransaction& txn,
                                                const std::string& storageKey) const;
  // The hints held under the encoded storage key, each with the owner it is kept for, by
  // owner id.

 private:
  GroupCommit& commits_;
  Limits limits_;
  std::map<uint64_t, uint64_t> counts_;  // owner id -> committed hints, owners with any
  std::map<uint32_t, uint64_t> partitionCounts_;  // partition -> committed hints, ones with any
  kj::Maybe<kj::Function<void()>> listener_;
  bool layoutRecorded_ = false;          // META says the hint keys are owner-first

  void open();
  void recordLayout(BatchTransaction& txn);
  void counted(uint64_t ownerId, uint32_t partition);
  void uncounted(uint64_t ownerId, uint32_t partition);
};

}  // namespace dynkv::storaged
