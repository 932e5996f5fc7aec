// Partition transfer (DESIGN.md, "Partition transfer"): when a new map makes this node a
// replica of partitions it did not hold, it streams each one from a node that held it
// under the previous map — the first of them the failure detector does not suspect — and
// refuses reads for a partition until its stream is complete and an anti-entropy exchange with
// each other replica has followed it (writes are accepted meanwhile and merge with what
// arrives). The exchange is what keeps a stale or emptied previous owner from handing over a
// hole: whatever another replica holds that the stream lacked is repaired before the first read. Pulling is rate limited,
// and the list of pending partitions with each stream's position is kept in the data
// directory, so a node killed mid-transfer resumes where it stopped.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "admission.h"
#include "net/node-pool.h"
#include "partition-map.h"
#include "versioned-store.h"

namespace dynkv::storaged {

class TransferManager {
 public:
  TransferManager(VersionedStore& store, StorageEngine& engine, NodePool& pool, kj::Timer& timer,
                  uint64_t selfId, uint32_t replicas, uint64_t bytesPerSecond,
                  BackgroundAdmission* admission = nullptr);
  // Objects that arrive go into `store`; the pending streams are recorded in `engine`'s META
  // table (the engine under `store`). `replicas` is the cluster's default N: the node holds
  // every partition in whose first `replicas` preference-list entries it appears. Each chunk is
  // fetched and stored under a slot of `admission` (null: unthrottled).

  static constexpr size_t CHUNK_BYTES = 256 * 1024;

  void mapChanged(const PartitionMap& previous, const PartitionMap& current);
  // Starts streams for partitions gained, drops those no longer wanted.

  bool readable(uint32_t partition) const { return pending_.count(partition) == 0; }

  kj::Promise<std::optional<Object>> readThrough(StorageKey key, std::optional<Object> local);
  // For a read of a partition still streaming in: `local` merged with a previous owner's copy
  // (the first source that answers). Fails (OVERLOADED) if no source answers, so the client
  // asks another replica rather than taking a partial answer for the whole truth.
  uint32_t pendingCount() const { return uint32_t(pending_.size()); }

  kj::Promise<void> run();
  // Streams pending partitions one at a time, forever: a chunk at a time, each under a
  // background slot, then the pause the rate limit asks for.

  void finishWith(kj::Function<kj::Promise<bool>(uint32_t partition)> exchange);
  // How a streamed partition is finished: `exchange` runs anti-entropy for it with its other
  // replicas and resolves to whether every one it tried finished (AntiEntropy::
  // exchangePartition). Until it does, the partition stays unreadable and is retried after
  // RETRY_DELAY. Without one, a partition is readable once streamed.

  static constexpr auto RETRY_DELAY = 1 * kj::SECONDS;

 private:
  struct Pending {
    std::vector<std::string> sources;  // addresses of the previous map's replicas
    std::string cursor;                // last storage key received
    bool streamed = false;             // the stream is complete; the exchange is not yet
    size_t nextSource = 0;
    kj::TimePoint retryAfter = kj::origin<kj::TimePoint>();  // after a failed exchange
  };

  VersionedStore& store_;
  StorageEngine& engine_;
  NodePool& pool_;
  kj::Timer& timer_;
  uint64_t selfId_;
  uint32_t replicas_;
  uint64_t bytesPerSecond_;
  BackgroundAdmission* admission_;
  std::map<uint32_t, Pending> pending_;
  kj::Maybe<kj::Function<kj::Promise<bool>(uint32_t)>> finisher_;

  std::vector<uint32_t> partitionsOf(const PartitionMap& map) const;
  kj::Promise<void> step();
  kj::Promise<kj::Duration> fetchChunk(uint32_t partition);
  kj::Promise<kj::Duration> finish(uint32_t partition);
  std::string chooseSource(Pending& pending);
  kj::Promise<std::optional<Object>> readFrom(std::vector<std::string> sources, size_t i,
                                              StorageKey key, std::optional<Object> local);
  void persist();
  void load();
};

}  // namespace dynkv::storaged
