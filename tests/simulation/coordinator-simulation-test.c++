// The shipped read and write coordinators under simulated faults, hundreds of seeds per
// scenario: no acknowledged write is ever lost.
//
// Each run also counts the acknowledged writes that still exist after healing and hinted
// handoff but that a quorum read misses. It finds some today, and why: when every owner of a
// key is suspected, a fallback coordinates the write and keeps it as its own data, not as a
// hint, so only the owners reached by the other replicas' hints ever get it (replay any seed
// the output names). Anti-entropy (#10) repairs that; until then it is reported, not failed.
//
// DYNKV_SIM_SEED=N replays one seed of every scenario; DYNKV_SIM_SEEDS=K runs K seeds each
// (default 500).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <iostream>

#include "hash.h"
#include "seeds.h"
#include "simulated-cluster.h"

namespace dynkv::sim {
namespace {

constexpr uint32_t NODES = 5;
constexpr Micros WORKLOAD = 1'000'000;  // one simulated second of client operations
constexpr int OPERATIONS = 150;
constexpr int KEYS = 8;

using Faults = std::function<void(SimulatedCluster&)>;

struct History {
  std::map<std::string, std::set<std::string>> acked;     // key -> values acknowledged
  std::map<std::string, std::set<std::string>> observed;  // key -> values a write superseded
  uint64_t writes = 0, ackedWrites = 0;
};

std::set<std::string> liveValues(const Object& object) {
  std::set<std::string> values;
  for (auto& s : object.siblings) {
    if (s.value) values.insert(*s.value);
  }
  return values;
}

void workload(SimulatedCluster& cluster, History& history) {
  // Blind puts and read-modify-writes on a few contended keys, at random times. A
  // read-modify-write supersedes what its read saw: those values may rightly disappear.
  std::uniform_int_distribution<Micros> when(0, WORKLOAD);
  for (int i = 0; i < OPERATIONS; i++) {
    auto key = "k" + std::to_string(cluster.rng()() % KEYS);
    auto value = "v" + std::to_string(i);
    bool readFirst = cluster.rng()() % 2 == 0;
    cluster.at(when(cluster.rng()), [&cluster, &history, key, value, readFirst]() {
      auto write = [&cluster, &history, key, value](WriteContext context, uint64_t fastest) {
        history.writes++;
        cluster.put(key, value, std::move(context), fastest,
                    [&history, key, value](SimulatedCluster::WriteResult result) {
                      if (!result.ok) return;
                      history.ackedWrites++;
                      history.acked[key].insert(value);
                    });
      };
      if (!readFirst) {
        write({}, 0);
        return;
      }
      cluster.get(key, cluster.r, [&history, key, write](SimulatedCluster::ReadResult read) {
        if (!read.ok) return;
        for (auto& v : liveValues(read.merged)) history.observed[key].insert(v);
        write(WriteContext{read.merged.vv, writeIdsOf(read.merged)}, read.fastest);
      });
    });
  }
}

struct Outcome {
  uint64_t lost = 0, unreadable = 0;
  std::string first;  // the first problem, for the failure message
};

Outcome runSeed(uint64_t seed, const Faults& faults) {
  SimulatedCluster cluster(seed, NODES, 3);
  History history;
  workload(cluster, history);
  faults(cluster);
  cluster.runUntil(WORKLOAD + 500'000);

  // Heal everything, bring every node back, let hinted handoff run to the end.
  cluster.heal();
  for (uint16_t i = 0; i < cluster.size(); i++) cluster.restart(i);
  cluster.runUntilIdle(WORKLOAD + 5'000'000);
  for (int round = 0; round < 3; round++) cluster.deliverHints();

  Outcome outcome;
  for (auto& [key, values] : history.acked) {
    auto everywhere = liveValues(cluster.everyCopy(key));
    std::set<std::string> quorum;
    bool readOk = false;
    cluster.get(key, cluster.r, [&](SimulatedCluster::ReadResult read) {
      readOk = read.ok;
      quorum = liveValues(read.merged);
    });
    cluster.runUntilIdle(cluster.now() + 1'000'000);
    for (auto& v : values) {
      if (history.observed[key].count(v) != 0) continue;  // superseded by a later write
      if (everywhere.count(v) == 0) {
        if (outcome.first.empty()) outcome.first = key + "=" + v + " is nowhere in the cluster";
        outcome.lost++;
      } else if (!readOk || quorum.count(v) == 0) {
        if (outcome.first.empty()) {
          outcome.first = key + "=" + v + " exists but a quorum read after healing misses it";
        }
        outcome.unreadable++;
      }
    }
  }
  return outcome;
}

void runScenario(const char* name, const Faults& faults) {
  auto seeds = seedsToRun();
  uint64_t lost = 0, unreadable = 0, failingSeeds = 0;
  std::string firstFailure;
  for (uint64_t seed = seeds.first; seed < seeds.end(); seed++) {
    auto outcome = runSeed(seed, faults);
    lost += outcome.lost;
    unreadable += outcome.unreadable;
    if (outcome.lost + outcome.unreadable > 0) {
      if (failingSeeds++ == 0) {
        firstFailure = "seed " + std::to_string(seed) + ": " + outcome.first +
                       " (replay: DYNKV_SIM_SEED=" + std::to_string(seed) + ")";
      }
    }
  }
  std::cout << name << ": " << seeds.count << " seeds, " << lost << " acknowledged writes lost, "
            << unreadable << " unreadable after healing, in " << failingSeeds << " seeds"
            << (firstFailure.empty() ? "" : "; first: " + firstFailure) << std::endl;
  CHECK(lost == 0);
  if (unreadable > 0)
    WARN(name << ": " << unreadable << " acknowledged writes unreadable by a quorum after healing");
}

TEST_CASE("simulation: reads and writes with a node down lose no acknowledged write") {
  runScenario("node down", [](SimulatedCluster& cluster) {
    uint16_t victim = uint16_t(cluster.rng()() % NODES);
    cluster.at(100'000, [&cluster, victim]() { cluster.crash(victim); });
    cluster.at(600'000, [&cluster, victim]() { cluster.restart(victim); });
  });
}

TEST_CASE("simulation: a partition cutting off two nodes loses no acknowledged write") {
  runScenario("partition", [](SimulatedCluster& cluster) {
    uint16_t a = uint16_t(cluster.rng()() % NODES);
    uint16_t b = uint16_t((a + 1 + cluster.rng()() % (NODES - 1)) % NODES);
    cluster.at(200'000, [&cluster, a, b]() { cluster.cutOff({a, b}); });
    cluster.at(700'000, [&cluster]() { cluster.heal(); });
    // Hinted handoff runs while the partition lasts, too.
    for (Micros t = 250'000; t < 1'000'000; t += 250'000) {
      cluster.at(t, [&cluster]() { cluster.deliverHints(); });
    }
  });
}

TEST_CASE("simulation: nodes crashing in the middle of writes lose no acknowledged write") {
  runScenario("crash during writes", [](SimulatedCluster& cluster) {
    std::uniform_int_distribution<Micros> when(0, WORKLOAD);
    std::uniform_int_distribution<Micros> downFor(20'000, 300'000);
    for (int i = 0; i < 3; i++) {
      uint16_t victim = uint16_t(cluster.rng()() % NODES);
      Micros at = when(cluster.rng());
      cluster.at(at, [&cluster, victim]() { cluster.crash(victim); });
      cluster.at(at + downFor(cluster.rng()), [&cluster, victim]() { cluster.restart(victim); });
    }
    for (Micros t = 250'000; t < 1'500'000; t += 250'000) {
      cluster.at(t, [&cluster]() { cluster.deliverHints(); });
    }
  });
}

}  // namespace
TEST_CASE("simulation: a delete that saw one coordinator's version removes its unanswered twin") {
  // The client hears nothing from the key's first owner (a one-way partition): the owner mints
  // the put, but its answer is lost, so the client has the next owner coordinate the same put
  // again. A read then sees only the second version, and a delete supersedes what it saw. Once
  // the partition heals, the first owner's version meets the delete: it must not come back.
  auto seeds = seedsToRun();
  uint64_t resurrected = 0, twins = 0;
  std::string first;
  for (uint64_t seed = seeds.first; seed < seeds.end(); seed++) {
    SimulatedCluster cluster(seed, NODES, 3);
    std::string key = "cart";
    uint16_t owner = cluster.map().preferenceList(cluster.map().partitionOf(keyHash("", key)),
                                                  3, NODES).nodes[0];
    cluster.muffle({owner});
    bool put = false, deleted = false;
    cluster.put(key, std::string("milk"), WriteContext(), 0,
                [&](SimulatedCluster::WriteResult r) { put = r.ok; });
    cluster.runUntilIdle(cluster.now() + 1'000'000);
    if (!put) continue;
    twins += cluster.node(owner).data[key].siblings.empty() ? 0 : 1;
    cluster.get(key, cluster.r, [&](SimulatedCluster::ReadResult read) {
      if (!read.ok) return;
      cluster.put(key, std::nullopt, WriteContext{read.merged.vv, writeIdsOf(read.merged)},
                  read.fastest, [&](SimulatedCluster::WriteResult r) { deleted = r.ok; });
    });
    cluster.runUntilIdle(cluster.now() + 1'000'000);
    if (!deleted) continue;
    cluster.heal();
    cluster.runUntilIdle(cluster.now() + 1'000'000);
    for (int round = 0; round < 3; round++) cluster.deliverHints();
    if (!liveValues(cluster.everyCopy(key)).empty()) {
      if (resurrected++ == 0) first = " (first: DYNKV_SIM_SEED=" + std::to_string(seed) + ")";
    }
  }
  std::cout << "one-way partition: " << seeds.count << " seeds, " << twins
            << " unanswered twins minted, " << resurrected << " deletes undone" << first
            << std::endl;
  CHECK(twins > 0);  // the scenario did what it says
  CHECK(resurrected == 0);
}

}  // namespace dynkv::sim
