// The node's versioned object store: DVV objects kept in a StorageEngine, keyed so that a
// partition is one contiguous range (DESIGN.md, "Local storage").
//
// Writes are group-committed: every write that arrives during one turn of the event loop
// joins one engine transaction (and so, with sync durability, one fsync), and each caller's
// promise resolves once that transaction is committed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <kj/async.h>
#include <kj/timer.h>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <string>
#include <vector>

#include "dvv.h"
#include "engine.h"
#include "hint-policy.h"
#include "limits.h"

namespace dynkv::storaged {

struct StorageKey {
  uint32_t partition = 0;
  std::string ns;
  std::string key;
};

std::string encodeStorageKey(const StorageKey& key);
// [partition: 2 bytes big-endian][namespace length: 1 byte][namespace][key]

StorageKey decodeStorageKey(kj::ArrayPtr<const kj::byte> bytes);

class Store {
 public:
  Store(StorageEngine& engine, const Actor& self, const Limits& limits, kj::Timer& timer);
  ~Store() noexcept(false);
  // With a BUFFERED engine a flusher thread makes committed writes durable every
  // BUFFERED_FLUSH_INTERVAL while there are any: the fsync never blocks the event loop (it
  // did, 7% of the time, when the loop ran it; see bench/).
  //
  // Hints that an earlier version stored in its layout (all owners' hints for one key
  // together) are rewritten in the current one, in one transaction, before the constructor
  // returns; it throws, leaving them as they were, if that transaction fails.

  static constexpr auto BUFFERED_FLUSH_INTERVAL = std::chrono::milliseconds(5);

  const Actor& self() const { return self_; }
  const Limits& limits() const { return limits_; }
  StorageEngine& engine() { return engine_; }

  std::optional<Object> get(const StorageKey& key);
  // The local copy; nullopt if this node holds none.

  kj::Promise<Object> coordinatePut(StorageKey key, Versioning kind, VersionVector context,
                                    std::optional<std::string> value, int64_t nowMicros);
  // The coordinator replica's write: dvv coordinatePut with this node's actor. Rejects (with a
  // message) a write to a key whose stored kind differs, or one that would leave more than
  // Limits::MAX_SIBLINGS siblings. Resolves to the stored object once committed.

  kj::Promise<void> replicate(StorageKey key, Object object);
  // Stores sync(local, object) once committed.

  // The hint store (DESIGN.md, "Request paths": sloppy quorum and hinted handoff). Hints are
  // kept per owner, each owner's in storage-key order, so that a holder can hand them off owner
  // by owner from a cursor: one owner's backlog never stands in front of another's. The Store
  // is the only writer of Table::HINTS (it keeps the per-owner counts in memory).

  kj::Promise<void> storeHint(uint64_t ownerId, StorageKey key, Object object);
  // Keeps a write meant for `ownerId` in the hint store (merged with any hint already held
  // for the same owner and key) until it can be handed off.

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
  HintPage hintsFor(uint64_t ownerId, const std::string& after, size_t max);
  // Up to `max` hints held for `ownerId`, in storage-key order, starting after the encoded
  // storage key `after` (empty: from the first). Reads only that owner's hints: O(max),
  // whatever else is held.

  kj::Promise<void> removeHint(const Hint& delivered);
  // Deletes a delivered hint, unless it changed since it was read (then it stays for the next
  // round).

  std::vector<HintBacklog> hintBacklog() const;
  // How many hints are held for each owner that has any, by owner id. From memory: O(owners).

  uint64_t hintCount() const;

  struct PartitionChunk {
    std::vector<std::pair<StorageKey, Object>> entries;
    std::string next;  // the last storage key returned: pass it back as `after`
    bool done = false; // no keys of the partition after `next`
  };
  PartitionChunk scanPartition(uint32_t partition, const std::string& after, size_t maxBytes);
  // The partition's objects in key order, starting after the storage key `after` (empty: from
  // the start), until about maxBytes of stored data (at least one object).

 private:
  struct PendingWrite;

  StorageEngine& engine_;
  Actor self_;
  Limits limits_;
  kj::Timer& timer_;
  std::vector<kj::Own<PendingWrite>> pending_;
  bool flushScheduled_ = false;
  kj::Promise<void> batchTask_ = nullptr;

  std::atomic<bool> dirty_{false};
  std::mutex flusherMutex_;
  std::condition_variable flusherWake_;
  bool stopFlusher_ = false;
  std::thread flusher_;

  std::map<uint64_t, uint64_t> hintCounts_;  // owner id -> committed hints, owners with any
  bool hintLayoutRecorded_ = false;          // META says the hint keys are owner-first

  void openHints();
  kj::Promise<Object> enqueue(kj::Own<PendingWrite> write);
  void commitBatch();
  void flusherLoop();
};

}  // namespace dynkv::storaged
