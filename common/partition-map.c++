// The partition map. See partition-map.h for the contract and DESIGN.md, "Partitioning and
// placement", for the targets (the paper's §6.2, strategy 3: Q equal partitions whose
// placement is decoupled from the partitioning).

#include "partition-map.h"

#include <kj/debug.h>

#include <algorithm>
#include <numeric>
#include <string_view>

namespace dynkv {

namespace {

// An owner slot not (yet) assigned to any node. MAX_NODES is 65535, so index 0xffff never
// names a node.
constexpr uint16_t NONE = 0xffff;

// Placement keeps the SPREAD owners on either side of a partition different from its owner,
// and from its zone where possible: with the default N = 3, the N consecutive ring owners
// that make up a preference list are then distinct nodes, so a node appears in N times as
// many preference lists as it owns partitions, and its load follows its weight.
constexpr uint32_t SPREAD = 2;

// How many partitions of lag (relative to its weighted schedule) a node must accumulate
// before placement puts it next to itself, or next to its own zone. They break the spreading
// rule only for a node too heavy to be spread (a share above 1/(SPREAD+1)), and so that such
// a node's partitions are interleaved along the ring instead of piled up at its end.
constexpr int64_t NODE_LAG = 2;
constexpr int64_t ZONE_LAG = 1;

std::optional<std::string> checkNodes(const std::vector<NodeInfo>& nodes) {
  if (nodes.empty()) return std::string("no nodes; a partition map needs at least one");
  if (nodes.size() > PartitionMap::MAX_NODES) {
    return "map has " + std::to_string(nodes.size()) + " nodes; the limit is " +
           std::to_string(PartitionMap::MAX_NODES);
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].weight == 0) {
      return "node " + std::to_string(nodes[i].id) + " has weight 0; weights must be >= 1";
    }
    // Callers sort by id first, so duplicates are adjacent.
    if (i > 0 && nodes[i - 1].id == nodes[i].id) {
      return "node id " + std::to_string(nodes[i].id) + " appears more than once";
    }
  }
  return std::nullopt;
}

void sortById(std::vector<NodeInfo>& nodes) {
  std::stable_sort(nodes.begin(), nodes.end(),
                   [](const NodeInfo& a, const NodeInfo& b) { return a.id < b.id; });
}

// Each node's number of partitions, proportional to its weight with largest-remainder
// rounding. Equal remainders go first to the node that already holds more partitions (when
// `current` is given: fewer moves on a rebalance), then to the lower node id.
std::vector<uint32_t> weightedTargets(const std::vector<NodeInfo>& nodes, uint32_t q,
                                      const std::vector<uint32_t>* current) {
  // q <= 2^16 and weights < 2^32, so q * weight and the total weight fit in 64 bits.
  uint64_t total = 0;
  for (auto& n : nodes) total += n.weight;
  std::vector<uint32_t> targets(nodes.size());
  std::vector<uint64_t> remainders(nodes.size());
  uint32_t assigned = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    uint64_t scaled = uint64_t(q) * nodes[i].weight;
    targets[i] = uint32_t(scaled / total);
    remainders[i] = scaled % total;
    assigned += targets[i];
  }
  std::vector<uint32_t> order(nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    if (remainders[a] != remainders[b]) return remainders[a] > remainders[b];
    if (current != nullptr && (*current)[a] != (*current)[b]) return (*current)[a] > (*current)[b];
    return a < b;  // nodes are sorted by id
  });
  for (uint32_t k = 0; assigned < q; ++k, ++assigned) ++targets[order[k]];
  return targets;
}

// The ring under construction, with what placement needs to know about neighbours.
class Ring {
 public:
  Ring(const std::vector<NodeInfo>& nodes, std::vector<uint16_t> owners)
      : owners_(std::move(owners)), q_(uint32_t(owners_.size())) {
    // A node without a zone is its own zone: it constrains nothing.
    std::vector<std::string_view> named;
    for (auto& n : nodes) {
      if (!n.zone.empty()) named.push_back(n.zone);
    }
    std::sort(named.begin(), named.end());
    named.erase(std::unique(named.begin(), named.end()), named.end());
    uint32_t zoneCount = uint32_t(named.size());
    for (auto& n : nodes) {
      if (n.zone.empty()) {
        zoneOf_.push_back(zoneCount++);
      } else {
        zoneOf_.push_back(
            uint32_t(std::lower_bound(named.begin(), named.end(), n.zone) - named.begin()));
      }
    }
    // Windows never reach round to the partition itself, and ask no more distinctness than
    // there are nodes (or zones) to give it.
    nodeWindow_ = std::min<uint32_t>({SPREAD, uint32_t(nodes.size()) - 1, q_ - 1});
    zoneWindow_ = std::min<uint32_t>(nodeWindow_, zoneCount - 1);
  }

  uint32_t size() const { return q_; }
  uint16_t owner(uint32_t p) const { return owners_[p]; }
  void assign(uint32_t p, uint16_t node) { owners_[p] = node; }
  std::vector<uint16_t> release() { return std::move(owners_); }

  bool nearSelf(uint32_t p, uint16_t node) const {
    return distance(p, nodeWindow_, [&](uint16_t o) { return o == node; }) != 0;
  }
  bool nearOwnZone(uint32_t p, uint16_t node) const {
    uint32_t zone = zoneOf_[node];
    return distance(p, zoneWindow_, [&](uint16_t o) { return zoneOf_[o] == zone; }) != 0;
  }

  // In partitions of lag: how strongly placing `node` at `p` breaks the spreading rule.
  // Closer repeats cost more.
  int64_t penalty(uint32_t p, uint16_t node) const {
    int64_t result = 0;
    if (uint32_t d = distance(p, nodeWindow_, [&](uint16_t o) { return o == node; })) {
      result += NODE_LAG * (nodeWindow_ + 1 - d);
    }
    uint32_t zone = zoneOf_[node];
    if (uint32_t d = distance(p, zoneWindow_, [&](uint16_t o) { return zoneOf_[o] == zone; })) {
      result += ZONE_LAG * (zoneWindow_ + 1 - d);
    }
    return result * q_;
  }

 private:
  std::vector<uint16_t> owners_;
  uint32_t q_;
  std::vector<uint32_t> zoneOf_;
  uint32_t nodeWindow_ = 0;
  uint32_t zoneWindow_ = 0;

  // Distance (1..window) to the nearest assigned partition on either side of `p` whose owner
  // matches, 0 when none does.
  template <typename Match>
  uint32_t distance(uint32_t p, uint32_t window, Match&& match) const {
    for (uint32_t d = 1; d <= window; ++d) {
      uint16_t before = owners_[(p + q_ - d) % q_];
      uint16_t after = owners_[(p + d) % q_];
      if ((before != NONE && match(before)) || (after != NONE && match(after))) return d;
    }
    return 0;
  }
};

// How far `node` is behind a schedule that hands out its `total` partitions evenly along
// the ring, at partition p, in units of 1/q partition. Placing by largest lag interleaves
// nodes the way a smooth weighted round robin does.
int64_t lag(uint32_t total, uint32_t done, uint32_t p, uint32_t q) {
  return int64_t(total) * (p + 1) - int64_t(done) * q;
}

}  // namespace

PartitionMap PartitionMap::build(std::vector<NodeInfo> nodes, uint32_t partitionBits,
                                 uint64_t version) {
  KJ_REQUIRE(partitionBits >= 1 && partitionBits <= MAX_PARTITION_BITS,
             "partition bits out of range", partitionBits, MAX_PARTITION_BITS);
  sortById(nodes);
  if (auto error = checkNodes(nodes)) KJ_FAIL_REQUIRE("bad node list", *error);

  uint32_t q = uint32_t(1) << partitionBits;
  std::vector<uint32_t> targets = weightedTargets(nodes, q, nullptr);
  std::vector<uint32_t> placed(nodes.size(), 0);
  Ring ring(nodes, std::vector<uint16_t>(q, NONE));

  // One partition at a time, to the node furthest behind its schedule once the spreading
  // penalty is counted. O(Q * nodes), which stays well under a second at the limits that
  // matter (Q = 2^16, hundreds of nodes).
  for (uint32_t p = 0; p < q; ++p) {
    uint16_t best = NONE;
    int64_t bestKey = 0;
    for (uint16_t i = 0; i < nodes.size(); ++i) {
      if (placed[i] >= targets[i]) continue;
      int64_t key = lag(targets[i], placed[i], p, q) - ring.penalty(p, i);
      if (best == NONE || key > bestKey) {
        best = i;
        bestKey = key;
      }
    }
    KJ_ASSERT(best != NONE, "targets sum to Q, so some node still needs a partition");
    ring.assign(p, best);
    ++placed[best];
  }

  PartitionMap map;
  map.version_ = version;
  map.partitionBits_ = partitionBits;
  map.nodes_ = std::move(nodes);
  map.owners_ = ring.release();
  return map;
}

PartitionMap PartitionMap::rebalanced(std::vector<NodeInfo> members, uint64_t newVersion) const {
  if (empty()) return build(std::move(members), DEFAULT_PARTITION_BITS, newVersion);
  sortById(members);
  if (auto error = checkNodes(members)) KJ_FAIL_REQUIRE("bad member list", *error);

  uint32_t q = partitionCount();
  size_t s = members.size();

  // Carry every partition of a node that stays over to its index in the new member list;
  // the departed nodes' partitions start unassigned.
  std::vector<uint16_t> remap(nodes_.size(), NONE);
  {
    size_t j = 0;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      while (j < s && members[j].id < nodes_[i].id) ++j;
      if (j < s && members[j].id == nodes_[i].id) remap[i] = uint16_t(j);
    }
  }
  std::vector<uint16_t> owners(q);
  std::vector<uint32_t> counts(s, 0);
  uint32_t departed = 0;
  for (uint32_t p = 0; p < q; ++p) {
    owners[p] = remap[owners_[p]];
    if (owners[p] == NONE) {
      ++departed;
    } else {
      ++counts[owners[p]];
    }
  }

  // The minimum number of moves is the departed partitions plus every node's excess over its
  // new target; this moves exactly those, and nothing else.
  std::vector<uint32_t> targets = weightedTargets(members, q, &counts);
  std::vector<uint32_t> excess(s, 0), toGive(s, 0), need(s, 0), received(s, 0), seen(s, 0);
  uint32_t totalNeed = 0;
  for (size_t i = 0; i < s; ++i) {
    excess[i] = toGive[i] = counts[i] > targets[i] ? counts[i] - targets[i] : 0;
    need[i] = targets[i] > counts[i] ? targets[i] - counts[i] : 0;
    totalNeed += need[i];
  }
  uint32_t totalExcess = std::accumulate(excess.begin(), excess.end(), uint32_t(0));
  KJ_ASSERT(totalNeed == departed + totalExcess);

  Ring ring(members, std::move(owners));

  // The receiver for partition p: a node still below target, furthest behind its own
  // schedule (so what it receives is spread along the ring), avoiding partitions it or its
  // zone already neighbours. ANY_RECEIVER only scores that; FRESH_NODE refuses a node within
  // the spreading window, FRESH_ZONE also a node whose zone is.
  enum Strictness { ANY_RECEIVER, FRESH_NODE, FRESH_ZONE };
  auto chooseReceiver = [&](uint32_t p, Strictness strictness) -> uint16_t {
    uint16_t best = NONE;
    int64_t bestKey = 0;
    for (uint16_t i = 0; i < s; ++i) {
      if (received[i] >= need[i]) continue;
      if (strictness >= FRESH_NODE && ring.nearSelf(p, i)) continue;
      if (strictness >= FRESH_ZONE && ring.nearOwnZone(p, i)) continue;
      int64_t key = lag(need[i], received[i], p, q) - ring.penalty(p, i);
      if (best == NONE || key > bestKey) {
        best = i;
        bestKey = key;
      }
    }
    return best;
  };
  auto handOver = [&](uint32_t p, uint16_t to) {
    uint16_t from = ring.owner(p);
    if (from != NONE) --excess[from];
    ring.assign(p, to);
    ++received[to];
  };

  // First walk: departed partitions must move, so each goes to the best receiver there is.
  // A donor hands over its excess paced along its own partitions (Bresenham), so what a
  // joining node takes is spread around the ring rather than taken from one arc.
  for (uint32_t p = 0; p < q; ++p) {
    uint16_t owner = ring.owner(p);
    if (owner == NONE) {
      uint16_t to = chooseReceiver(p, ANY_RECEIVER);
      KJ_ASSERT(to != NONE, "receivers still need at least the departed partitions");
      handOver(p, to);
    } else if (excess[owner] > 0) {
      uint32_t n = ++seen[owner];
      uint32_t due = uint32_t(uint64_t(toGive[owner]) * n / counts[owner]);
      if (toGive[owner] - excess[owner] < due) {
        uint16_t to = chooseReceiver(p, FRESH_ZONE);
        if (to != NONE) handOver(p, to);
      }
    }
  }
  // Whatever pacing or the spreading windows held back, relaxing one rule at a time; the last
  // walk is unconditional and always completes, because the remaining excess equals the
  // remaining need.
  for (Strictness strictness : {FRESH_ZONE, FRESH_NODE, ANY_RECEIVER}) {
    for (uint32_t p = 0; p < q; ++p) {
      uint16_t owner = ring.owner(p);
      if (excess[owner] == 0) continue;
      uint16_t to = chooseReceiver(p, strictness);
      if (to != NONE) handOver(p, to);
    }
  }
  KJ_ASSERT(std::accumulate(excess.begin(), excess.end(), uint32_t(0)) == 0);

  PartitionMap map;
  map.version_ = newVersion;
  map.partitionBits_ = partitionBits_;
  map.nodes_ = std::move(members);
  map.owners_ = ring.release();
  return map;
}

std::optional<std::string> checkNodeField(const char* field, size_t bytes) {
  if (bytes <= NodeInfo::MAX_FIELD_BYTES) return std::nullopt;
  return std::string("invalid argument: member ") + field + " is " + std::to_string(bytes) +
         " bytes; the limit is " + std::to_string(NodeInfo::MAX_FIELD_BYTES);
}

std::optional<std::string> checkNodeInfo(const NodeInfo& info) {
  if (auto problem = checkNodeField("name", info.name.size())) return problem;
  if (auto problem = checkNodeField("address", info.address.size())) return problem;
  return checkNodeField("zone", info.zone.size());
}

std::optional<PartitionMap> PartitionMap::fromParts(uint64_t version, uint32_t partitionBits,
                                                    std::vector<NodeInfo> nodes,
                                                    std::vector<uint16_t> owners,
                                                    std::string* error) {
  auto fail = [&](std::string message) -> std::optional<PartitionMap> {
    if (error != nullptr) *error = std::move(message);
    return std::nullopt;
  };
  if (partitionBits < 1 || partitionBits > MAX_PARTITION_BITS) {
    return fail("partition map has " + std::to_string(partitionBits) +
                " partition bits; must be 1 to " + std::to_string(MAX_PARTITION_BITS));
  }
  size_t q = size_t(1) << partitionBits;
  if (owners.size() != q) {
    return fail("partition map has " + std::to_string(owners.size()) + " owners for " +
                std::to_string(q) + " partitions (2^" + std::to_string(partitionBits) + ")");
  }
  if (nodes.size() > MAX_NODES) {
    return fail("partition map has " + std::to_string(nodes.size()) + " nodes; the limit is " +
                std::to_string(MAX_NODES));
  }
  for (auto& node : nodes) {
    if (auto problem = checkNodeInfo(node)) return fail(*problem);
  }
  for (uint32_t p = 0; p < q; ++p) {
    if (owners[p] >= nodes.size()) {
      return fail("partition " + std::to_string(p) + " names owner index " +
                  std::to_string(owners[p]) + " but the map has " + std::to_string(nodes.size()) +
                  " nodes");
    }
  }

  // The sender's node order need not be ours: sort by id and renumber the owners, so equal
  // maps compare equal whatever order they travelled in.
  std::vector<uint16_t> order(nodes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](uint16_t a, uint16_t b) { return nodes[a].id < nodes[b].id; });
  std::vector<uint16_t> renumber(nodes.size());
  std::vector<NodeInfo> sorted;
  sorted.reserve(nodes.size());
  for (uint16_t k = 0; k < order.size(); ++k) {
    renumber[order[k]] = k;
    sorted.push_back(std::move(nodes[order[k]]));
  }
  if (auto message = checkNodes(sorted)) return fail("partition map: " + *message);
  for (auto& o : owners) o = renumber[o];

  PartitionMap map;
  map.version_ = version;
  map.partitionBits_ = partitionBits;
  map.nodes_ = std::move(sorted);
  map.owners_ = std::move(owners);
  return map;
}

uint32_t PartitionMap::partitionOf(uint64_t keyHash) const {
  // A shift by 64 is undefined; an empty map (0 bits) has no partitions to name anyway.
  if (partitionBits_ == 0) return 0;
  return uint32_t(keyHash >> (64 - partitionBits_));
}

PreferenceList PartitionMap::preferenceList(uint32_t partition, uint32_t n,
                                            uint32_t fallbacks) const {
  PreferenceList result;
  if (owners_.empty()) return result;
  KJ_REQUIRE(partition < owners_.size(), "partition out of range", partition, owners_.size());

  // Distinct nodes in ring order, each marked whether it is a primary. A node whose zone a
  // primary already covers is deferred (left unmarked) while zones remain.
  struct Found {
    uint16_t node;
    bool primary;
  };
  boost::container::small_vector<Found, 16> found;
  boost::container::small_vector<uint64_t, 4> seen((nodes_.size() + 63) / 64, 0);
  uint32_t primaries = 0;
  uint32_t q = partitionCount();
  auto zoneTaken = [&](uint16_t node) {
    const std::string& zone = nodes_[node].zone;
    if (zone.empty()) return false;  // no zone: constrains nothing
    for (auto& f : found) {
      if (f.primary && nodes_[f.node].zone == zone) return true;
    }
    return false;
  };

  // Stop once the primaries and enough further nodes are known, or every node has been
  // seen. With fewer zones than n the walk goes on until then, since only the whole ring
  // shows that the zones have run out.
  for (uint32_t step = 0; step < q && found.size() < nodes_.size(); ++step) {
    if (primaries == n && found.size() - primaries >= fallbacks) break;
    uint16_t node = owners_[(partition + step) % q];
    uint64_t bit = uint64_t(1) << (node % 64);
    if (seen[node / 64] & bit) continue;
    seen[node / 64] |= bit;
    bool primary = primaries < n && !zoneTaken(node);
    if (primary) ++primaries;
    found.push_back({node, primary});
  }
  // Zones ran out before n primaries: take the deferred nodes, in ring order.
  for (auto& f : found) {
    if (primaries >= n) break;
    if (!f.primary) {
      f.primary = true;
      ++primaries;
    }
  }

  for (auto& f : found) {
    if (f.primary) result.nodes.push_back(f.node);
  }
  result.primaries = primaries;
  for (auto& f : found) {
    if (result.nodes.size() >= primaries + size_t(fallbacks)) break;
    if (!f.primary) result.nodes.push_back(f.node);
  }
  return result;
}

std::optional<uint16_t> PartitionMap::indexOf(uint64_t nodeId) const {
  auto it = std::lower_bound(nodes_.begin(), nodes_.end(), nodeId,
                             [](const NodeInfo& n, uint64_t id) { return n.id < id; });
  if (it == nodes_.end() || it->id != nodeId) return std::nullopt;
  return uint16_t(it - nodes_.begin());
}

std::vector<uint32_t> PartitionMap::shares() const {
  std::vector<uint32_t> result(nodes_.size(), 0);
  for (uint16_t o : owners_) ++result[o];
  return result;
}

}  // namespace dynkv
