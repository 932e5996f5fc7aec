// Gossip membership (DESIGN.md, "Membership and failure detection"; the paper's §4.8).
// Every second the node bumps its heartbeat and exchanges its membership state with a
// random live peer (and now and then a seed, so the cluster never splits into islands that
// each believe they are whole). The state and the map are kept in the data directory.
//
// The phi accrual detector watches each member's heartbeat; it decides routing and which
// node is designated to recompute the map, never ownership: a node that merely stops keeps
// its partitions until an operator says `dynkv admin leave`.
#pragma once

#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "membership-state.h"
#include "membership.h"
#include "node-pool.h"
#include "phi-accrual.h"
#include "engine.h"

namespace dynkv::storaged {

struct GossipOptions {
  NodeInfo self;
  uint64_t generation = 0;          // this process's start time, microseconds
  std::vector<std::string> seeds;   // addresses
  uint32_t partitionBits = 10;
  kj::Duration interval = 1 * kj::SECONDS;
  uint32_t seedEvery = 10;          // gossip with a seed at least every this many rounds
};

class GossipMembership final : public Membership {
 public:
  GossipMembership(GossipOptions options, StorageEngine& engine, NodePool& pool,
                   kj::Timer& timer);

  MapSnapshot current() const override { return state_.map(); }
  void observeVersion(uint64_t peerVersion) override;
  void gossip(wire::GossipState::Reader in, wire::GossipState::Builder out) override;
  void join(const std::string& address) override;
  void leave(const std::string& address) override;
  void status(wire::Admin::StatusResults::Builder out) override;

  using MapListener = kj::Function<void(const PartitionMap& previous, const PartitionMap& now)>;
  void onMapChange(MapListener listener) { listener_ = kj::mv(listener); }
  void setPendingTransfers(kj::Function<uint32_t()> count) { pendingTransfers_ = kj::mv(count); }

  kj::Promise<void> run();
  // Gossips forever, one round per interval.

  bool suspected(uint64_t id) const;
  const MembershipState& state() const { return state_; }

 private:
  GossipOptions options_;
  StorageEngine& engine_;
  NodePool& pool_;
  kj::Timer& timer_;
  MembershipState state_;
  std::map<uint64_t, PhiAccrual> detectors_;
  std::mt19937_64 rng_;
  uint64_t round_ = 0;
  bool dirty_ = false;
  bool eagerRound_ = false;
  kj::Maybe<MapListener> listener_;
  kj::Maybe<kj::Function<uint32_t()>> pendingTransfers_;

  int64_t nowMillis() const;
  kj::Promise<void> exchange();
  void fill(wire::GossipState::Builder out, bool includeMap) const;
  void mergeIn(wire::GossipState::Reader in);
  void adopt(MapPtr map);
  void tick();
  const Member* byAddress(const std::string& address) const;
  void persist();
  void load();
};

}  // namespace dynkv::storaged
