// What the tests of placement and anti-entropy share, across layers (unit and simulation): a ring
// of nodes, an object written by an actor, and an in-memory replica that keeps a hash tree per
// partition current on every change, as storaged keeps it in the write's transaction. The
// replica also answers an exchange's requests (the Peer calls aeRoots, aeChildren and aeKeys of
// schema/dynkv.capnp) from its own copies.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "anti-entropy-exchange.h"
#include "dvv.h"
#include "merkle-tree.h"
#include "partition-map.h"

namespace dynkv {

inline PartitionMap ring(const std::vector<uint64_t>& ids, uint32_t partitionBits = 6) {
  // Equal-weight nodes "node-<id>" at "node-<id>:1", no zones.
  std::vector<NodeInfo> nodes;
  for (auto id : ids) {
    auto name = "node-" + std::to_string(id);
    nodes.push_back(NodeInfo{id, name, name + ":1", "", 1});
  }
  return PartitionMap::build(std::move(nodes), partitionBits, 1);
}

inline Object written(const Object& local, const Actor& by, std::string value) {
  // `by` overwrites what it holds (its vv as the context).
  return coordinatePut(local, by, local.vv, std::move(value), 1000);
}

constexpr std::string_view REPLICA_NS = "ns";  // the namespace of every key a Replica holds

inline std::string storageKey(uint32_t partition, const std::string& key) {
  // Partition first, as storaged's storage keys are: [2 bytes big-endian][key].
  return std::string{char(partition >> 8), char(partition & 0xff)} + key;
}

inline std::pair<uint32_t, std::string> splitStorageKey(const std::string& storage) {
  return {uint32_t(uint8_t(storage[0])) << 8 | uint8_t(storage[1]), storage.substr(2)};
}

class Replica {
 public:
  using Contents = std::map<std::string, Object>;  // key -> object

  explicit Replica(TreeShape shape = TreeShape()) : shape_(shape) {}
  TreeShape shape() const { return shape_; }

  const std::map<uint32_t, Contents>& partitions() const { return partitions_; }

  const Object* find(uint32_t partition, const std::string& key) const {
    auto p = partitions_.find(partition);
    if (p == partitions_.end()) return nullptr;
    auto it = p->second.find(key);
    return it == p->second.end() ? nullptr : &it->second;
  }

  void put(uint32_t partition, const std::string& key, Object object) {
    // Stores `object` as it is; an empty object erases the key.
    auto& contents = partitions_[partition];
    auto& tree = trees_.try_emplace(partition, shape_).first->second;
    auto it = contents.find(key);
    std::optional<uint64_t> before;
    if (it != contents.end()) before = causalDigest(it->second);
    std::optional<uint64_t> after;
    if (!object.empty()) after = causalDigest(object);
    tree.update(REPLICA_NS, key, before, after);
    if (object.empty()) {
      if (it != contents.end()) contents.erase(it);
      if (contents.empty()) drop(partition);
    } else {
      contents[key] = std::move(object);
    }
  }

  bool merge(uint32_t partition, const std::string& key, const Object& incoming) {
    // Stores sync(local, incoming), as replication does; true if that changed the copy here.
    auto local = find(partition, key);
    Object merged = local ? sync(*local, incoming) : incoming;
    if (local && merged == *local) return false;
    if (!local && merged.empty()) return false;
    put(partition, key, std::move(merged));
    return true;
  }

  void drop(uint32_t partition) {
    partitions_.erase(partition);
    trees_.erase(partition);
  }

  const MerkleTree* tree(uint32_t partition) const {
    auto it = trees_.find(partition);
    return it == trees_.end() ? nullptr : &it->second;
  }
  uint64_t root(uint32_t partition) const {
    auto t = tree(partition);
    return t ? t->root() : 0;
  }

  Exchange::Trees trees() const {
    // For an Exchange this replica starts; the replica must outlive it.
    return [this](uint32_t partition) { return tree(partition); };
  }

  // ---- its side of an exchange ----

  std::vector<uint64_t> roots(const std::vector<uint32_t>& partitions) const {
    std::vector<uint64_t> out;
    for (auto p : partitions) out.push_back(root(p));
    return out;
  }

  std::vector<std::array<uint32_t, MerkleTree::FANOUT>> children(
      uint64_t salt, const std::vector<TreeNodeRef>& nodes) const {
    const MerkleTree EMPTY(shape_);
    std::vector<std::array<uint32_t, MerkleTree::FANOUT>> out;
    for (auto& node : nodes) {
      auto t = tree(node.partition);
      auto hashes = (t ? *t : EMPTY).children(node.level, node.index);
      auto& salted = out.emplace_back();
      for (size_t i = 0; i < MerkleTree::FANOUT; i++) salted[i] = saltedHash(hashes[i], salt);
    }
    return out;
  }

  struct Listing {
    std::vector<KeyDigest> keys;  // in storage key order within each segment
    size_t segmentsCovered = 0;
  };
  Listing listKeys(const std::vector<SegmentRef>& segments, size_t maxEntries = SIZE_MAX) const {
    // Segment by segment, stopping at a segment boundary once maxEntries are listed (at least
    // one segment), as aeKeys does.
    Listing listing;
    for (auto& s : segments) {
      if (listing.segmentsCovered > 0 && listing.keys.size() >= maxEntries) break;
      auto p = partitions_.find(s.partition);
      if (p != partitions_.end()) {
        for (auto& [key, object] : p->second) {
          if (MerkleTree::fineSegmentOf(REPLICA_NS, key) >> shape_.fineShift() != s.segment) {
            continue;
          }
          listing.keys.push_back(
              KeyDigest{storageKey(s.partition, key), causalDigest(object), causalSummary(object)});
        }
      }
      listing.segmentsCovered++;
    }
    return listing;
  }

 private:
  TreeShape shape_;
  std::map<uint32_t, Contents> partitions_;
  std::map<uint32_t, MerkleTree> trees_;
};

inline bool repairBoth(Replica& local, Replica& peer, const std::string& storage) {
  // Makes both copies of a key their sync; true if either changed.
  auto [partition, key] = splitStorageKey(storage);
  auto mine = local.find(partition, key), theirs = peer.find(partition, key);
  Object localCopy = mine ? *mine : Object{}, peerCopy = theirs ? *theirs : Object{};
  bool changedHere = local.merge(partition, key, peerCopy);
  bool changedThere = peer.merge(partition, key, localCopy);
  return changedHere || changedThere;
}

inline bool repair(Replica& local, Replica& peer, const KeyRepair& r) {
  // Moves a key's versions the way the exchange said (r.needs), as storaged's shell does: the
  // peer's copy synced here if it must be fetched, this node's synced there if it must be
  // pushed. True if either copy changed.
  auto [partition, key] = splitStorageKey(r.key);
  auto mine = local.find(partition, key), theirs = peer.find(partition, key);
  Object localCopy = mine ? *mine : Object{}, peerCopy = theirs ? *theirs : Object{};
  bool changedHere = r.needs.fetch && local.merge(partition, key, peerCopy);
  bool changedThere = r.needs.push && peer.merge(partition, key, localCopy);
  return changedHere || changedThere;
}

inline std::vector<Exchange::Step> runExchange(Exchange& exchange, Replica& local, Replica& peer,
                                               size_t peerMaxEntries = SIZE_MAX) {
  // Answers each step of `exchange` (started over `local`'s trees) from the two replicas until
  // it ends, with no failure: the peer lists at most about peerMaxEntries keys a step, and each
  // key of a REPAIR step is repaired the way it needs (repair()). Returns the steps, in order.
  std::vector<Exchange::Step> steps;
  using Kind = Exchange::Step::Kind;
  while (!exchange.finished()) {
    steps.push_back(exchange.step());
    auto& step = steps.back();
    switch (step.kind) {
      case Kind::ASK_ROOTS: {
        auto roots = peer.roots(step.partitions);
        if (combinedRoots(roots) == step.rootsHash) {
          exchange.rootsEqual();
        } else {
          exchange.rootsReceived(roots);
        }
        break;
      }
      case Kind::ASK_CHILDREN:
        exchange.childrenReceived(peer.children(step.salt, step.nodes));
        break;
      case Kind::LIST_KEYS: {
        auto theirs = peer.listKeys(step.segments, peerMaxEntries);
        auto mine = local.listKeys(
            {step.segments.begin(), step.segments.begin() + ptrdiff_t(theirs.segmentsCovered)});
        exchange.keysListed(mine.keys, theirs.keys, theirs.segmentsCovered);
        break;
      }
      case Kind::REPAIR: {
        size_t changed = 0;
        for (auto& r : step.repairs) changed += repair(local, peer, r) ? 1 : 0;
        exchange.repaired(changed);
        break;
      }
      case Kind::DONE:
      case Kind::FAILED:
        break;
    }
  }
  return steps;
}

}  // namespace dynkv
