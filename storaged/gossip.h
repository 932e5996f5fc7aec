// Gossip membership (DESIGN.md, "Membership and failure detection"; the paper's §4.8): the
// shell that runs the pure gossip round (common/coordinator/gossip-round.h) over the network.
// Every interval it starts a round and exchanges the round's message with the peer the round
// picks, through the connection pool, with a timeout; it answers peers' exchanges; it keeps
// the membership state and the map in the data directory, written only when the round says
// something durable changed (a heartbeat alone is never written); it tells the partition
// transfers about each map adopted.
//
// Liveness comes from the process's one failure detector, shared with routing: the round
// reports each fresh heartbeat to it and asks it whom to suspect. It decides routing and which
// node is designated to recompute the map, never ownership: a node that merely stops keeps its
// partitions until an operator says `dynkv admin leave`.
#pragma once

#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>

#include <string>
#include <vector>

#include "engine.h"
#include "group-commit.h"
#include "net/failure-detector.h"
#include "gossip-round.h"
#include "membership-state.h"
#include "membership.h"
#include "net/node-pool.h"

namespace dynkv::storaged {

struct GossipOptions {
  NodeInfo self;
  uint64_t generation = 0;         // this process's start time, microseconds
  std::string httpAddress;         // our HTTP port, gossiped in our record; empty: none
  std::vector<std::string> seeds;  // addresses
  uint32_t partitionBits = 10;
  kj::Duration interval = 1 * kj::SECONDS;
  uint32_t seedEvery = 10;  // gossip with a seed at least every this many rounds
};

void encodeGossipMessage(const GossipMessage& message, wire::GossipState::Builder out);
GossipMessage decodeGossipMessage(wire::GossipState::Reader in);
// A gossip exchange on the wire, and as kept in the data directory. Decoding validates every
// record (decodeMember) and the map (decodePartitionMap) and throws (FAILED) on the first that
// is malformed, so nothing of a bad message is used.

class GossipMembership final : public Membership, private kj::TaskSet::ErrorHandler {
 public:
  GossipMembership(GossipOptions options, GroupCommit& commits, NodePool& pool,
                   FailureDetector& detector, kj::Timer& timer);
  // Restores the state kept in the commits' engine (if any) and writes it back with this
  // process's record before returning. Later changes that must survive a restart (members,
  // statuses, the map; not heartbeats) are written through `commits`, in the same transaction
  // as the turn's data writes, at most once per turn however many changes the turn made. `detector` is the process's one failure detector, the one `pool` reports to; every
  // reference must outlive this object.

  MapSnapshot current() const override { return round_.state().map(); }
  void observeVersion(uint64_t peerVersion) override;
  void gossip(wire::GossipState::Reader in, wire::GossipState::Builder out) override;
  void join(const std::string& address) override;
  void leave(const std::string& address) override;
  void forceRemove(const std::string& address, bool evenIfAlive) override;
  void status(wire::Admin::StatusResults::Builder out) override;

  using MapListener = kj::Function<void(const PartitionMap& previous, const PartitionMap& now)>;
  void onMapChange(MapListener listener) { listener_ = kj::mv(listener); }
  void setPendingTransfers(kj::Function<uint32_t()> count) { pendingTransfers_ = kj::mv(count); }
  void setHandoffPartitions(kj::Function<std::vector<uint32_t>()> partitions) {
    handoffPartitions_ = kj::mv(partitions);
  }
  // Where our record's pending transfers and handoff partitions (hints, data of partitions we
  // are no replica of) come from; read at every round.

  void handoffChanged();
  // The handoff partitions changed: publish them now, and if one was added gossip within 50 ms
  // rather than at the next interval.

  kj::Promise<void> run();
  // Gossips forever, one round per interval (at once after an admin change or a newer map).

  bool suspected(uint64_t id) const;
  const MembershipState& state() const { return round_.state(); }

  uint64_t writes() const { return writes_; }
  // How many times the state was committed (start-up included).

 private:
  GossipOptions options_;
  GroupCommit& commits_;
  NodePool& pool_;
  FailureDetector& detector_;
  kj::Timer& timer_;
  DetectorLiveness liveness_;
  GossipRound round_;
  kj::Maybe<MapListener> listener_;
  kj::Maybe<kj::Function<uint32_t()>> pendingTransfers_;
  kj::Maybe<kj::Function<std::vector<uint32_t>()>> handoffPartitions_;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> wake_;  // cuts the wait between rounds short
  uint64_t writes_ = 0;
  bool persistQueued_ = false;  // a write of the state is in this turn's batch
  bool persistFailed_ = false;  // the last one failed (a full disk): try again next round
  kj::TaskSet tasks_;           // queued writes of the state
  int64_t refusalLoggedAt_ = INT64_MIN;  // when a refused gossip message was last logged
  uint64_t refusalsUnlogged_ = 0;        // refused since then, not logged one by one

  int64_t nowMicros() const;
  uint32_t pendingTransfers();
  bool publishHandoffPartitions();
  void apply(GossipChanges changes);
  void logRefusal(const kj::Exception& exception);
  kj::Promise<void> exchange();
  void persist();
  void persistNow();
  void writeState(WriteTransaction& txn);
  void taskFailed(kj::Exception&& exception) override;
  static MembershipState load(StorageEngine& engine);
};

}  // namespace dynkv::storaged
