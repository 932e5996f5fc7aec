// Anti-entropy (DESIGN.md, "Anti-entropy"; the paper's §4.7): the shell that runs exchanges of
// this node's hash trees (hash-trees.h) with its peers and acts on what they establish. The
// decisions are pure and live in common/coordinator/: anti-entropy-exchange.h walks one
// exchange, anti-entropy-plan.h says with whom to exchange, which tombstones may go and which
// handed-over partitions may be dropped. This class sends the steps over the node pool, answers
// its peers' steps from its own trees and store, and keeps the counters `dynkv status` shows.
//
// Every round, every exchange step and every collection waits for a slot of the node's
// background admission (admission.h), so repair yields to foreground traffic.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "anti-entropy-plan.h"
#include "hash-trees.h"
#include "membership.h"
#include "net/node-pool.h"
#include "versioned-store.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

class BackgroundAdmission;  // admission.h

struct AntiEntropyOptions {
  uint32_t replicas = 3;  // the cluster's N: which partitions this node is a replica of
  kj::Duration interval = 10 * kj::SECONDS;
  // Between the ends of two rounds; a round exchanges with every peer this node shares a
  // partition with. A node that is rebuilding runs its rounds back to back (1 s apart).
  std::function<bool(uint32_t partition)> streaming;
  // Partitions still streaming in from a previous owner (TransferManager::readable): rounds
  // leave them to the transfer, which ends with exchangePartition(). Empty: none are.
  std::function<OutsideWrites()> outsideWrites;
  // Where writes may be that no exchange can confirm (hints held anywhere; anti-entropy-plan.h):
  // their partitions' tombstones wait, as do those of partitions `streaming` in here. Empty:
  // nowhere (a node that holds no hints and whose peers hold none).
  std::function<void()> dropped;
  // Called after this node dropped a partition it is no replica of (gossip says so at once).
  kj::Duration stepTimeout = 10 * kj::SECONDS;  // one request of an exchange
  kj::Duration reapAfter = 10 * kj::SECONDS;
  // A tombstone every replica holds is collected only once it is this old too: a fallback
  // that stored a hint it covers just before may not have gossiped it yet (outsideWrites
  // learns of hints at gossip's pace, within a few rounds). Never a reason to collect on its
  // own.
  bool rebuilding = false;
  // The node started with an empty data directory: if it turns out to be a member of the ring,
  // it reports itself rebuilding until anti-entropy has refilled each of its partitions.
  ExchangeLimits limits;
};

class AntiEntropy {
 public:
  AntiEntropy(VersionedStore& store, HashTrees& trees, Membership& membership, NodePool& pool,
              kj::Timer& timer, BackgroundAdmission* admission, AntiEntropyOptions options);
  // All must outlive it; admission null: background work is not throttled. This node is
  // store.self().node.

  kj::Promise<void> run();
  // Rounds forever. Never fails: a failed exchange is logged and counted, and retried in the
  // next round.

  struct Report {
    uint32_t exchanges = 0;
    uint32_t failed = 0;
    uint32_t deferred = 0;  // a round's exchanges left to the next round: the peer stayed busy
                            // exchanging with this node (see aeRoots) for DEFER_ATTEMPTS
    uint32_t partitions = 0;
    uint64_t segmentsDiffering = 0;
    uint64_t keysRepaired = 0;
    std::string message;  // the first failure, if any
  };
  kj::Promise<Report> repair(std::optional<uint32_t> partition);

  kj::Promise<bool> exchangePartition(uint32_t partition);
  // A transfer's last step: an exchange of `partition` with each of its other replicas that the
  // failure detector does not suspect, under background slots. Resolves to whether every one
  // finished (false if it tried none).
  // An exchange now with every peer sharing `partition` (nullopt: every partition this node
  // holds or is a replica of), then the collection they allow. Not throttled: an operator asked.

  // ---- A peer's steps (schema/dynkv.capnp, Peer.ae*), answered from this node's trees ----
  // Each refuses (KJ_REQUIRE, "invalid argument") a request over its limits or naming a
  // partition, node or segment that cannot exist, before doing anything.
  void answerRoots(wire::Peer::AeRootsParams::Reader in, wire::Peer::AeRootsResults::Builder out);
  void answerChildren(wire::Peer::AeChildrenParams::Reader in,
                      wire::Peer::AeChildrenResults::Builder out);
  void answerKeys(wire::Peer::AeKeysParams::Reader in, wire::Peer::AeKeysResults::Builder out);
  void answerFetch(wire::Peer::AeFetchParams::Reader in, wire::Peer::AeFetchResults::Builder out);
  kj::Promise<void> answerPush(wire::Peer::AePushParams::Reader in);
  kj::Promise<uint32_t> answerReap(wire::Peer::AeReapParams::Reader in);

  static constexpr size_t MAX_PARTITIONS_PER_REQUEST = 4096;
  static constexpr size_t MAX_NODES_PER_REQUEST = 4096;
  static constexpr size_t MAX_SEGMENTS_PER_REQUEST = 4096;
  static constexpr size_t MAX_KEYS_PER_REPLY = 16384;
  static constexpr size_t MAX_KEYS_PER_LISTING = 1 << 20;
  // What a peer's listing may hold: it stops at a segment boundary past MAX_KEYS_PER_REPLY,
  // so one segment of a very large partition may take it further.
  static constexpr size_t MAX_ENTRIES_PER_REQUEST = 1024;   // fetch, push, reap
  static constexpr size_t MAX_OBJECT_BYTES_PER_MESSAGE = 4 << 20;
  static constexpr int DEFER_ATTEMPTS = 20;
  static constexpr kj::Duration DEFER_WAIT = 250 * kj::MILLISECONDS;
  // A round's exchange that finds its peer exchanging with this node already (the two would
  // repair the same keys twice, each pushing what the other fetches) waits for it: it is tried
  // again after the round's other exchanges, every DEFER_WAIT, DEFER_ATTEMPTS times at most.
  static constexpr int HELD_ELSEWHERE_ROUNDS = 2;
  // How many intervals after a non-replica last exchanged a partition its primary still
  // leaves the partition's tombstones alone: a node that holds it exchanges it every round
  // (an interval plus the round's own time apart). Until that node drops its copy it also says
  // so in its gossip record (outsideWrites); this covers the moments before gossip has carried
  // that, and a node already REMOVED, whose record no longer counts.

  bool rebuilding() const { return rebuilding_; }
  std::vector<uint32_t> heldNotOwned() const;
  // The partitions this node holds data of but is not a replica of in its current map
  // (ascending): what it still has to hand over before it drops them.
  void fillStats(wire::AntiEntropyStats::Builder out) const;
  uint64_t tombstonesReaped() const { return tombstonesReaped_; }
  uint64_t partitionsDropped() const { return partitionsDropped_; }

 private:
  struct Run;  // one exchange in progress

  VersionedStore& store_;
  HashTrees& trees_;
  Membership& membership_;
  NodePool& pool_;
  kj::Timer& timer_;
  BackgroundAdmission* admission_;
  AntiEntropyOptions options_;
  ReplicaLedger ledger_;
  uint64_t self_;
  uint64_t nextSalt_;
  bool rebuilding_ = false;
  bool rebuildDecided_ = false;
  kj::Promise<void> idle_ = kj::READY_NOW;  // resolves when the exchanges queued so far ended
  int running_ = 0;  // exchangeAll() calls in progress (a round, a transfer, an operator)

  // Counters for status.
  std::optional<kj::TimePoint> lastFinished_;
  uint64_t exchangesFinished_ = 0;
  uint64_t exchangesFailed_ = 0;
  uint64_t lastRoundSegments_ = 0;
  uint64_t keysRepaired_ = 0;
  uint64_t bytesSent_ = 0;
  uint64_t bytesReceived_ = 0;
  // The same split by Peer call (as caller and as callee), so that status says which step of
  // the exchange costs the bytes.
  enum class Call : uint8_t { ROOTS, CHILDREN, KEYS, FETCH, PUSH, REAP, COUNT };
  static constexpr const char* CALL_NAMES[] = {"aeRoots", "aeChildren", "aeKeys",
                                               "aeFetch", "aePush",     "aeReap"};
  struct CallBytes {
    uint64_t sent = 0;
    uint64_t received = 0;
  };
  std::array<CallBytes, size_t(Call::COUNT)> byCall_{};
  uint64_t tombstonesReaped_ = 0;
  uint64_t partitionsDropped_ = 0;
  std::map<uint64_t, const Run*> exchangingWith_;  // peer -> this node's exchange with it now
  struct Answering {
    uint64_t requester = 0;
    kj::TimePoint until = kj::origin<kj::TimePoint>();
  };
  std::map<uint32_t, Answering> answering_;
  // partition -> the node whose exchange of it this node last answered with differing roots,
  // for ANSWERING_LEASE: a round's exchange of the same partition from another node waits
  // (busy), or both would find and repair the same keys here (a restarted node's peers).
  static constexpr kj::Duration ANSWERING_LEASE = 2 * kj::SECONDS;
  std::map<uint32_t, kj::TimePoint> heldElsewhere_;  // partition -> when a node that is no
                                                     // replica of it last asked for its root

  kj::Promise<void> round();
  kj::Promise<Report> exchangeAll(MapSnapshot map, std::vector<ExchangePlan> plans,
                                  bool throttled, bool deferrable = false);
  kj::Promise<bool> exchangeOne(MapSnapshot map, ExchangePlan plan, bool throttled,
                                bool deferrable, Report& report);
  // Resolves to whether the peer was busy (only if `deferrable`): nothing was exchanged.
  kj::Promise<std::vector<ExchangePlan>> exchangeEach(MapSnapshot map,
                                                      std::vector<ExchangePlan> plans,
                                                      bool throttled, bool deferrable,
                                                      Report& report);
  // One exchange after another; resolves to the plans whose peer answered busy.
  kj::Promise<void> retryDeferred(MapSnapshot map, std::vector<ExchangePlan> plans,
                                  bool throttled, Report& report, int attempts);
  kj::Promise<void> drive(Run& run);
  kj::Promise<void> step(Run& run);
  kj::Promise<size_t> repairKeys(Run& run, std::vector<KeyRepair> repairs);
  kj::Promise<void> fetch(Run& run, const std::vector<std::string>& wanted, size_t next,
                          std::map<std::string, Object>& fetched);
  HashTrees::Listing listWithSummaries(const std::vector<SegmentRef>& segments,
                                       size_t maxEntries);
  kj::Promise<void> collect(MapSnapshot map, bool throttled);
  kj::Promise<void> reap(MapSnapshot map, uint32_t partition);
  kj::Promise<void> drop(uint32_t partition);
  template <typename T>
  kj::Promise<T> throttle(bool throttled, kj::Function<kj::Promise<T>()> work);
  std::vector<uint32_t> heldNotOwned(const PartitionMap& map) const;
  std::vector<ExchangePlan> plansFor(const PartitionMap& map, std::optional<uint32_t> partition,
                                     const std::function<bool(uint64_t node)>& suspected) const;
  bool owns(const PartitionMap& map, uint32_t partition) const;
  void updateRebuilding(const PartitionMap& map);
  void countSent(Call call, uint64_t bytes);
  void countReceived(Call call, uint64_t bytes);
};

}  // namespace dynkv::storaged
