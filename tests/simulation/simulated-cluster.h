// A deterministic simulation of a dynkv cluster for the shipped coordinators (in the spirit of
// FoundationDB's): the real ReadCoordinator and WriteCoordinator of common/coordinator/ drive
// simulated storage nodes over a simulated network and clock. Message delays, node crashes
// and partitions come from one seeded generator, so a run is a pure function of its seed: a
// failure found once is replayed by its seed for ever (DYNKV_SIM_SEED=N).
//
// The nodes model storaged's replica behaviour with the same value functions it uses
// (coordinatePut and sync from common/dvv.h): an owner stores sync(local, object); a fallback
// keeps the write as a hint for its owner and answers reads with its hints merged in; hints
// are handed to their owners when they can be reached. Storage is durable: a crashed node
// comes back with what it had stored.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "partition-map.h"
#include "simulated-clock.h"
#include "read-coordinator.h"
#include "write-coordinator.h"

namespace dynkv::sim {


struct SimNode {
  uint64_t id = 0;
  bool up = true;
  std::map<std::string, Object> data;                        // owner copies
  std::map<std::pair<uint64_t, std::string>, Object> hints;  // (owner id, key) -> held write
};

class SimulatedCluster {
 public:
  SimulatedCluster(uint64_t seed, uint32_t nodes, uint32_t n);

  std::mt19937_64& rng() { return rng_; }
  Micros now() const { return clock_.now(); }
  const PartitionMap& map() const { return map_; }
  SimNode& node(uint16_t index) { return nodes_.at(index); }
  size_t size() const { return nodes_.size(); }

  // ---- Faults ----
  void crash(uint16_t node);              // down: every message to or from it is lost until restart
  void restart(uint16_t node);            // up again with its stored data
  void cutOff(std::set<uint16_t> nodes);  // the client cannot reach these, nor they the rest
  void muffle(std::set<uint16_t> nodes);  // these get requests, but their replies are lost
  void heal();                            // every node reachable again (crashed ones stay down)
  bool reachable(uint16_t node) const;    // from the client (and from the other side)

  // ---- Time ----
  void at(Micros when, std::function<void()> action);  // schedules an event
  void runUntil(Micros when);                          // processes events up to `when`
  void runUntilIdle(Micros limit);                     // until no event is left (or `limit`)

  // ---- Client operations, through the shipped coordinators ----
  struct WriteResult {
    bool ok = false;
    FailureKind failure = FailureKind::UNAVAILABLE;
    std::optional<Object> object;  // the version written, when ok
    uint64_t coordinator = 0;
  };
  struct ReadResult {
    bool ok = false;
    Object merged;
    uint64_t fastest = 0;
  };

  void put(const std::string& key, std::optional<std::string> value, WriteContext context,
           uint64_t fastest, std::function<void(WriteResult)> done);
  // Every replica asked to coordinate the put mints its version under the put's one write id,
  // as the SDK's request driver names them.
  void get(const std::string& key, uint32_t r, std::function<void(ReadResult)> done);

  // ---- Repair and inspection ----
  void deliverHints();
  // Hinted handoff: every up node hands each hint whose owner it can reach to that owner.
  Object everyCopy(const std::string& key) const;
  // The sync of every replica's copy and every hint of the key, wherever held: what the
  // cluster still has. A value absent from it is lost for good.

  uint32_t n() const { return n_; }
  uint32_t w = 2, r = 2;
  Micros replicaTimeout = 50'000, callTimeout = 100'000;

 private:
  std::mt19937_64 rng_;
  SimulatedClock clock_;
  PartitionMap map_;
  std::vector<SimNode> nodes_;
  std::set<uint16_t> cutOff_;
  std::set<uint16_t> muffled_;
  uint64_t writeIds_ = 0;  // handed out so far
  uint32_t n_;
  std::map<uint16_t, Micros> suspected_;  // the client's failure detector: node -> until when
  // A node that fails is suspected for SUSPICION after its last failure, as a detector that
  // keeps probing would clear it; an answer clears it at once.
  static constexpr Micros SUSPICION = 200'000;
  void suspect(uint16_t node) { suspected_[node] = clock_.now() + SUSPICION; }
  void trust(uint16_t node) { suspected_.erase(node); }

  class SimHealth;
  Micros delay();
  PreferenceList preferenceList(const std::string& key) const;
  Object localCopy(uint16_t node, const std::string& key) const;  // owner copy + hints
  void store(uint16_t node, const std::string& key, const Object& object, uint64_t hintFor);
  void call(uint16_t node, std::function<void()> atNode, std::function<void()> reply,
            std::function<void()> refused);
  // A request to `node`: atNode runs at the node after a network delay if the node is up and
  // reachable then, and `reply` at the client after another delay if the way back is still
  // open. A node that is down but reachable refuses the connection: `refused` runs at the
  // client after a delay. Anything lost on the way is noticed only by a timeout.
};

}  // namespace dynkv::sim
