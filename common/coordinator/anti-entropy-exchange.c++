#include "anti-entropy-exchange.h"

#include <kj/debug.h>

#include <algorithm>
#include <map>
#include <string_view>

namespace dynkv {

namespace {

using Kind = Exchange::Step::Kind;

template <typename T>
std::vector<T> takeFront(std::deque<T>& from, size_t max) {
  size_t n = std::min(max, from.size());
  std::vector<T> out(std::make_move_iterator(from.begin()),
                     std::make_move_iterator(from.begin() + ptrdiff_t(n)));
  from.erase(from.begin(), from.begin() + ptrdiff_t(n));
  return out;
}

}  // namespace

Exchange::Exchange(std::vector<uint32_t> partitions, uint64_t salt, Trees trees,
                   ExchangeLimits limits, TreeShape shape)
    : salt_(salt), trees_(std::move(trees)), limits_(limits), empty_(shape) {
  KJ_REQUIRE(trees_ != nullptr, "an exchange needs this node's trees");
  KJ_REQUIRE(limits_.maxPartitionsPerStep >= 1 && limits_.maxNodesPerStep >= 1 &&
                 limits_.maxSegmentsPerStep >= 1 && limits_.maxRepairsPerStep >= 1,
             "every exchange limit must be at least 1");
  std::set<uint32_t> seen;
  for (auto p : partitions) {
    if (seen.insert(p).second) partitions_.push_back(p);
  }
  advance();
}

const MerkleTree& Exchange::localTree(uint32_t partition) const {
  auto tree = trees_(partition);
  if (tree == nullptr) return empty_;
  KJ_REQUIRE(tree->shape() == empty_.shape(), "a tree of another shape than the exchange's",
             partition, tree->shape().segments(), empty_.shape().segments());
  return *tree;
}

void Exchange::advance() {
  // Roots, then the walk breadth-first (children are queued behind the nodes of the level
  // above, so a FIFO is level order), then the listings of the differing segments. Repairs go
  // out as soon as a full step of them is pending rather than after every listing: the
  // listings of a node that lost its data cover every key it shares, and holding their repairs
  // until the end would hold all of those keys at once.
  step_ = Step{};
  if (nextPartition_ < partitions_.size()) {
    size_t n = std::min(limits_.maxPartitionsPerStep, partitions_.size() - nextPartition_);
    auto first = partitions_.begin() + ptrdiff_t(nextPartition_);
    step_.kind = Kind::ASK_ROOTS;
    step_.partitions.assign(first, first + ptrdiff_t(n));
    askedRoots_.clear();
    for (auto p : step_.partitions) askedRoots_.push_back(localTree(p).root());
    step_.rootsHash = combinedRoots(askedRoots_);
    nextPartition_ += n;
  } else if (!pendingNodes_.empty()) {
    step_.kind = Kind::ASK_CHILDREN;
    step_.salt = salt_;
    step_.nodes = takeFront(pendingNodes_, limits_.maxNodesPerStep);
  } else if (pendingRepairs_.size() >= limits_.maxRepairsPerStep ||
             (pendingSegments_.empty() && !pendingRepairs_.empty())) {
    step_.kind = Kind::REPAIR;
    step_.repairs = takeFront(pendingRepairs_, limits_.maxRepairsPerStep);
  } else if (!pendingSegments_.empty()) {
    step_.kind = Kind::LIST_KEYS;
    step_.segments = takeFront(pendingSegments_, limits_.maxSegmentsPerStep);
  } else {
    step_.kind = Kind::DONE;
    // Every difference found was listed and repaired: the peer now holds a version covering
    // each key this node held at compare time.
    for (auto& d : differing_) {
      if (unresolved_.count(d.partition) == 0) covered_.push_back(d);
    }
    return;
  }
  stats_.steps++;
}

void Exchange::rootsEqual() {
  KJ_REQUIRE(step_.kind == Kind::ASK_ROOTS, "roots received for another step");
  for (size_t i = 0; i < askedRoots_.size(); i++) {
    stats_.partitionsCompared++;
    covered_.push_back(Covered{step_.partitions[i], askedRoots_[i]});
  }
  advance();
}

void Exchange::rootsReceived(const std::vector<uint64_t>& roots) {
  KJ_REQUIRE(step_.kind == Kind::ASK_ROOTS, "roots received for another step");
  KJ_REQUIRE(roots.size() == step_.partitions.size(), "one root per partition asked", roots.size(),
             step_.partitions.size());
  for (size_t i = 0; i < roots.size(); i++) {
    uint32_t p = step_.partitions[i];
    uint64_t local = localTree(p).root();
    stats_.partitionsCompared++;
    if (local == roots[i]) {
      covered_.push_back(Covered{p, local});
    } else {
      stats_.partitionsDiffering++;
      differing_.push_back(Covered{p, local});
      pendingNodes_.push_back(TreeNodeRef{p, 0, 0});
    }
  }
  advance();
}

void Exchange::childrenReceived(
    const std::vector<std::array<uint32_t, MerkleTree::FANOUT>>& children) {
  KJ_REQUIRE(step_.kind == Kind::ASK_CHILDREN, "children received for another step");
  KJ_REQUIRE(children.size() == step_.nodes.size(), "one set of children per node asked",
             children.size(), step_.nodes.size());
  for (size_t i = 0; i < children.size(); i++) {
    auto& node = step_.nodes[i];
    auto local = localTree(node.partition).children(node.level, node.index);
    bool found = false;
    for (uint32_t c = 0; c < MerkleTree::FANOUT; c++) {
      if (saltedHash(local[c], salt_) == children[i][c]) continue;
      found = true;
      uint32_t index = node.index * uint32_t(MerkleTree::FANOUT) + c;
      if (node.level + 1u == empty_.shape().segmentLevel()) {
        stats_.segmentsDiffering++;
        pendingSegments_.push_back(SegmentRef{node.partition, index});
      } else {
        pendingNodes_.push_back(TreeNodeRef{node.partition, uint8_t(node.level + 1), index});
      }
    }
    // A node differs only if one of its children does: none seen means the salted hashes
    // collided (or a write changed a side since), and this walk cannot vouch for the partition.
    if (!found) unresolved_.insert(node.partition);
  }
  advance();
}

void Exchange::keysListed(const std::vector<KeyDigest>& local, const std::vector<KeyDigest>& peer,
                          size_t segmentsCovered) {
  KJ_REQUIRE(step_.kind == Kind::LIST_KEYS, "keys listed for another step");
  KJ_REQUIRE(segmentsCovered >= 1 && segmentsCovered <= step_.segments.size(),
             "a listing covers at least one of the segments asked, at most all", segmentsCovered,
             step_.segments.size());
  struct Sides {
    std::optional<uint64_t> local, peer;
    const CausalSummary* localSummary = nullptr;
    const CausalSummary* peerSummary = nullptr;
  };
  std::map<std::string_view, Sides> byKey;
  for (auto& k : local) {
    auto& sides = byKey[k.key];
    KJ_REQUIRE(!sides.local, "a key listed twice on this node's side", k.key);
    sides.local = k.digest;
    sides.localSummary = &k.summary;
  }
  for (auto& k : peer) {
    auto& sides = byKey[k.key];
    KJ_REQUIRE(!sides.peer, "a key listed twice on the peer's side", k.key);
    sides.peer = k.digest;
    sides.peerSummary = &k.summary;
  }
  stats_.keysCompared += local.size() + peer.size();

  std::vector<KeyRepair> found;  // in key order, as the map is
  for (auto& [key, sides] : byKey) {
    if (sides.local == sides.peer) continue;
    auto summary = [](const CausalSummary* s) {
      return s ? std::optional<CausalSummary>(*s) : std::nullopt;
    };
    found.push_back(KeyRepair{std::string(key), sides.local, sides.peer,
                              repairNeeds(summary(sides.localSummary),
                                          summary(sides.peerSummary))});
  }
  stats_.keysDiffering += found.size();
  // Each segment is listed once, so these keys are new; merged to keep the queue in key order.
  size_t before = pendingRepairs_.size();
  pendingRepairs_.insert(pendingRepairs_.end(), std::make_move_iterator(found.begin()),
                         std::make_move_iterator(found.end()));
  std::inplace_merge(pendingRepairs_.begin(), pendingRepairs_.begin() + ptrdiff_t(before),
                     pendingRepairs_.end(),
                     [](const KeyRepair& a, const KeyRepair& b) { return a.key < b.key; });

  // What the peer could not list this time is asked first next time.
  pendingSegments_.insert(pendingSegments_.begin(),
                          step_.segments.begin() + ptrdiff_t(segmentsCovered),
                          step_.segments.end());
  advance();
}

void Exchange::repaired(size_t keys) {
  KJ_REQUIRE(step_.kind == Kind::REPAIR, "repairs reported for another step");
  KJ_REQUIRE(keys <= step_.repairs.size(), "more keys repaired than asked", keys,
             step_.repairs.size());
  stats_.keysRepaired += keys;
  advance();
}

void Exchange::failed() {
  KJ_REQUIRE(!finished(), "the exchange has already ended");
  step_ = Step{};
  step_.kind = Kind::FAILED;
  pendingNodes_.clear();
  pendingSegments_.clear();
  pendingRepairs_.clear();
}

bool Exchange::finished() const {
  return step_.kind == Kind::DONE || step_.kind == Kind::FAILED;
}

}  // namespace dynkv
