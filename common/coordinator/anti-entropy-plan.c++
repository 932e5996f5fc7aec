#include "anti-entropy-plan.h"

#include <kj/debug.h>

#include <algorithm>

namespace dynkv {

namespace {

bool contains(const std::vector<uint64_t>& nodes, uint64_t node) {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

}  // namespace

std::vector<uint64_t> replicasOf(const PartitionMap& map, uint32_t partition, uint32_t n) {
  std::vector<uint64_t> ids;
  if (map.empty() || n == 0) return ids;
  auto pref = map.preferenceList(partition, n, 0);
  for (uint32_t i = 0; i < pref.primaries; i++) ids.push_back(map.nodes()[pref.nodes[i]].id);
  return ids;
}

std::vector<ExchangePlan> planExchanges(const PartitionMap& map, uint64_t self, uint32_t n,
                                        const std::vector<uint32_t>& heldNotOwned,
                                        const std::function<bool(uint64_t node)>& suspected) {
  std::vector<ExchangePlan> plans;
  if (map.empty()) return plans;
  std::map<uint64_t, std::set<uint32_t>> shared;  // peer -> partitions, both in order
  auto withEveryOther = [&](uint32_t partition, const std::vector<uint64_t>& replicas) {
    for (auto r : replicas) {
      if (r != self) shared[r].insert(partition);
    }
  };
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto replicas = replicasOf(map, p, n);
    if (contains(replicas, self)) withEveryOther(p, replicas);
  }
  for (auto p : heldNotOwned) {
    KJ_REQUIRE(p < map.partitionCount(), "a held partition the map does not have", p,
               map.partitionCount());
    withEveryOther(p, replicasOf(map, p, n));
  }
  for (auto& [peer, partitions] : shared) {
    if (suspected(peer)) continue;
    plans.push_back(ExchangePlan{peer, {partitions.begin(), partitions.end()}});
  }
  return plans;
}

void ReplicaLedger::record(uint64_t peer, const std::vector<uint32_t>& partitions,
                           const std::vector<Exchange::Covered>& covered, bool finished,
                           const std::function<uint64_t(uint32_t partition)>& currentRoot) {
  std::set<uint32_t> exchanged(partitions.begin(), partitions.end());
  for (auto& c : covered) {
    KJ_REQUIRE(exchanged.count(c.partition) == 1, "covered a partition not exchanged", c.partition);
    // A finished exchange counts for the partitions it covered, not all it was over: one whose
    // walk lost track of a difference (a salted collision) has not synced the peer's copy here.
    if (finished) finished_.insert({c.partition, peer});
    if (currentRoot(c.partition) == c.root) coveredRoots_[{c.partition, peer}] = c.root;
  }
}

bool ReplicaLedger::coveredByAll(uint32_t partition, const std::vector<uint64_t>& peers,
                                 uint64_t currentRoot) const {
  for (auto peer : peers) {
    auto it = coveredRoots_.find({partition, peer});
    if (it == coveredRoots_.end() || it->second != currentRoot) return false;
  }
  return true;
}

bool ReplicaLedger::exchangedWithAny(uint32_t partition, const std::vector<uint64_t>& peers) const {
  for (auto peer : peers) {
    if (finished_.count({partition, peer}) != 0) return true;
  }
  return false;
}

void ReplicaLedger::forget(uint32_t partition) {
  // Both are ordered by partition first: its entries are one range.
  auto from = std::make_pair(partition, uint64_t(0));
  auto to = std::make_pair(partition + 1, uint64_t(0));
  coveredRoots_.erase(coveredRoots_.lower_bound(from), coveredRoots_.lower_bound(to));
  finished_.erase(finished_.lower_bound(from), finished_.lower_bound(to));
}

OutsideWrites outsideWrites(const MembershipState& state) {
  OutsideWrites outside;
  for (auto& [id, member] : state.members()) {
    if (member.status == MemberStatus::REMOVED) continue;
    if (member.handoffEverywhere) outside.everywhere = true;
    outside.handoff.insert(member.handoffPartitions.begin(), member.handoffPartitions.end());
  }
  return outside;
}

CollectionPlan planCollection(const PartitionMap& map, uint64_t self, uint32_t n,
                              const std::vector<PartitionState>& held,
                              const ReplicaLedger& ledger, const OutsideWrites& outside) {
  CollectionPlan plan;
  if (map.empty()) return plan;
  std::map<uint32_t, const PartitionState*> byPartition;
  for (auto& state : held) {
    KJ_REQUIRE(state.partition < map.partitionCount(), "a held partition the map does not have",
               state.partition, map.partitionCount());
    byPartition.emplace(state.partition, &state);
  }
  for (auto& [p, state] : byPartition) {
    auto replicas = replicasOf(map, p, n);
    if (replicas.empty()) continue;
    if (replicas.front() == self) {
      // Only the primary decides, and only once every other replica holds what it holds: the
      // tombstones it collects are then held everywhere, and no replica keeps a version they
      // cover to hand back.
      std::vector<uint64_t> others(replicas.begin() + 1, replicas.end());
      if (state->tombstones > 0 && !state->heldElsewhere && !outside.covers(p) &&
          ledger.coveredByAll(p, others, state->root)) {
        plan.reap.push_back(p);
      }
    } else if (!contains(replicas, self)) {
      if (ledger.coveredByAll(p, replicas, state->root)) plan.drop.push_back(p);
    }
  }
  return plan;
}

bool rebuilt(const PartitionMap& map, uint64_t self, uint32_t n, const ReplicaLedger& ledger) {
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    auto replicas = replicasOf(map, p, n);
    if (!contains(replicas, self) || replicas.size() < 2) continue;
    std::vector<uint64_t> others;
    for (auto r : replicas) {
      if (r != self) others.push_back(r);
    }
    if (!ledger.exchangedWithAny(p, others)) return false;
  }
  return true;
}

}  // namespace dynkv
