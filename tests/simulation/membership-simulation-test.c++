// The shipped gossip round (common/coordinator/gossip-round.h) and the process's failure
// detector (common/net/failure-detector.h) under a simulated network and clock, hundreds of
// seeds: 100 nodes, operators joining new nodes and taking others out of the ring, with message
// loss, a temporary partition and nodes crashing and restarting from what they had persisted;
// two nodes die for good (one of them while leaving) and are taken out with remove --force.
//
// Each simulated process is what storaged/gossip.c++ does around the round, step for step:
// a round every second (50 ms after an admin change or a newer map), an exchange with the
// peer the round picks under a 2 s timeout, a failed or silent exchange reported to its one
// failure detector, an answered one clearing it; the state written to its "disk" only when
// the round says something durable changed, and restored from there after a crash. Partition
// transfers finish at once (pendingTransfers is 0), so a leaving node is removed as soon as
// every ring member has the map without it.
//
// Checked for every seed:
// - within CONVERGE_WITHIN of the last fault, every running node holds every member with the
//   status the operators asked for (joined: up; left: removed; the rest: up), the same status
//   versions and the same map version, and that map holds exactly the UP members;
// - throughout, a node that has seen a member removed never sees it otherwise again (even
//   after a restart), and no node's map holds a member it has as removed (a force-removed
//   one excepted: it is removed first, and the designated node's next map drops it);
// - once converged, rounds keep going but nothing is written to disk (heartbeats are not
//   persisted).
//
// DYNKV_SIM_SEED=N replays one seed; DYNKV_SIM_SEEDS=K runs K seeds (default 500);
// DYNKV_SIM_TRACE=1 prints, each simulated second after the last fault, what still keeps the
// nodes from agreeing.
#include <kj/exception.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "seeds.h"
#include "failure-detector.h"
#include "gossip-round.h"
#include "simulated-network.h"

namespace dynkv::sim {
namespace {

constexpr size_t INITIAL = 90;  // in the ring, with a map, when the run starts
constexpr size_t JOINERS = 10;  // new processes that an operator joins
constexpr size_t NODES = INITIAL + JOINERS;
constexpr size_t LEAVERS = 5;  // ring members an operator takes out
constexpr size_t SEEDS = 3;
constexpr size_t CRASHES = 3;
constexpr Micros INTERVAL = 1'000'000;  // storaged's default gossip interval
constexpr Micros EAGER = 50'000;        // an eager round
constexpr Micros EXCHANGE_TIMEOUT = 2'000'000;
constexpr Micros FAULTS_END = 12'000'000;  // healed and restarted by then
constexpr Micros CONVERGE_WITHIN = 60'000'000;
constexpr Micros QUIET = 3'000'000;  // converged: watched this long for writes
constexpr uint32_t PARTITION_BITS = 8;
constexpr double LOSS = 0.05;

struct Process {
  // One running storaged's gossip: dies with a crash.
  std::unique_ptr<FailureDetector> detector;
  std::unique_ptr<DetectorLiveness> liveness;
  std::unique_ptr<GossipRound> round;
};

struct Disk {
  // What survives a crash.
  std::optional<MembershipState> state;
  uint64_t writes = 0;
};

class MembershipSimulation {
 public:
  explicit MembershipSimulation(uint64_t seed)
      : net_(seed, NODES, SimulatedNetwork::Options{1'000, 30'000, LOSS}),
        processes_(NODES),
        disks_(NODES),
        removedSeen_(NODES) {
    for (size_t i = 0; i < NODES; i++) {
      NodeInfo info;
      info.id = i + 1;
      info.address = "10.0.0." + std::to_string(i + 1) + ":7400";
      info.name = info.address;
      infos_.push_back(info);
      index_[info.address] = i;
    }
    for (size_t i = 0; i < SEEDS; i++) seeds_.push_back(infos_[i].address);
  }

  std::string run(Micros* convergedAfter) {
    setUp();
    for (Micros t = 0; t <= FAULTS_END; t += INTERVAL) {
      net_.runUntil(t);
      if (auto problem = checkSafety(); !problem.empty()) return problem;
    }
    Micros convergedAt = -1;
    for (Micros t = FAULTS_END; t <= FAULTS_END + CONVERGE_WITHIN; t += INTERVAL) {
      net_.runUntil(t);
      if (auto problem = checkSafety(); !problem.empty()) return problem;
      if (getenv("DYNKV_SIM_TRACE")) std::cerr << t / 1000000 << "s: " << converged() << std::endl;
      if (converged().empty()) {
        convergedAt = t;
        break;
      }
    }
    if (convergedAt < 0) return "not converged within 60 s of the last fault: " + converged();
    *convergedAfter = convergedAt - FAULTS_END;

    uint64_t writes = totalWrites();
    net_.runUntil(convergedAt + QUIET);
    if (auto problem = checkSafety(); !problem.empty()) return problem;
    if (auto problem = converged(); !problem.empty())
      return "diverged after converging: " + problem;
    if (totalWrites() != writes) {
      return "converged, yet " + std::to_string(totalWrites() - writes) +
             " state writes in the next 3 s of rounds";
    }
    return "";
  }

 private:
  SimulatedNetwork net_;
  std::vector<NodeInfo> infos_;
  std::map<std::string, size_t> index_;
  std::vector<std::string> seeds_;
  std::vector<Process> processes_;
  std::vector<Disk> disks_;
  std::map<size_t, MemberStatus> expected_;
  std::vector<std::set<uint64_t>> removedSeen_;  // per node: members it has seen removed
  std::set<size_t> deadForGood_;  // killed, never restarted: `admin remove --force` takes them

  GossipRound& round(size_t i) { return *processes_[i].round; }

  Micros uniform(Micros lo, Micros hi) {
    return std::uniform_int_distribution<Micros>(lo, hi)(net_.rng());
  }

  void setUp() {
    // The first INITIAL nodes were in the ring before: each restores the same settled state
    // (every one of them UP, the map over them) from its disk.
    MembershipState settled;
    for (size_t i = 0; i < INITIAL; i++) {
      Member m;
      m.info = infos_[i];
      m.generation = 1;
      settled.merge(m);
      settled.setStatus(m.info.id, MemberStatus::UP);
      expected_[i] = MemberStatus::UP;
    }
    settled.adoptMap(settled.recomputedMap(PARTITION_BITS, 1));
    for (auto& [id, m] : settled.members()) {
      settled.mutableMember(id).mapVersion = settled.map()->version();
    }
    for (size_t i = 0; i < INITIAL; i++) {
      disks_[i].state = settled;
      net_.at(uniform(0, INTERVAL), [this, i]() { start(i); });
    }
    for (size_t i = INITIAL; i < NODES; i++) {
      net_.crash(i);  // not running yet
      expected_[i] = MemberStatus::UP;
      Micros at = uniform(1'000'000, 5'000'000);
      net_.at(at, [this, i]() {
        net_.restart(i);
        start(i);
      });
      net_.at(at + uniform(500'000, 2'000'000), [this, i]() { admin(i, MemberStatus::UP); });
    }
    std::vector<size_t> candidates;  // seeds stay: every node's configuration names them
    for (size_t i = SEEDS; i < INITIAL; i++) candidates.push_back(i);
    std::shuffle(candidates.begin(), candidates.end(), net_.rng());
    for (size_t k = 0; k < LEAVERS; k++) {
      size_t i = candidates[k];
      expected_[i] = MemberStatus::REMOVED;
      net_.at(uniform(2'000'000, 7'000'000), [this, i]() { admin(i, MemberStatus::LEAVING); });
    }
    // Two ring members die for good: one while up, one just as an operator asked it to leave
    // (so it never hands off). An operator force-removes both.
    for (size_t k = LEAVERS; k < LEAVERS + 2; k++) {
      size_t i = candidates[k];
      bool leaving = k == LEAVERS + 1;
      expected_[i] = MemberStatus::REMOVED;
      deadForGood_.insert(i);
      Micros at = uniform(2'000'000, 6'000'000);
      net_.at(at, [this, i, leaving]() {
        if (leaving) admin(i, MemberStatus::LEAVING);
        net_.crash(i);
        processes_[i] = Process{};
      });
      net_.at(at + 1'000'000, [this, i]() { forceRemove(i); });
    }

    // A partition cutting a fifth of the nodes off for a while.
    std::vector<size_t> side;
    for (size_t i = 0; i < NODES; i++) {
      if (net_.rng()() % 5 == 0) side.push_back(i);
    }
    Micros cut = uniform(2'000'000, 5'000'000);
    net_.at(cut, [this, side]() { net_.partition(side); });
    net_.at(cut + uniform(3'000'000, 6'000'000), [this]() { net_.heal(); });

    // Crashes, each followed by a restart from what the node had written.
    for (size_t k = 0; k < CRASHES; k++) {
      size_t i = size_t(net_.rng()() % NODES);
      Micros at = uniform(1'000'000, 9'000'000);
      net_.at(at, [this, i]() {
        if (!net_.up(i)) return;  // not started yet, or already down
        net_.crash(i);
        processes_[i] = Process{};
      });
      net_.at(at + uniform(1'000'000, 3'000'000), [this, i]() {
        if (net_.up(i) || !disks_[i].state || deadForGood_.count(i)) return;
        net_.restart(i);
        start(i);
      });
    }
  }

  void start(size_t i) {
    auto& p = processes_[i];
    p.detector = std::make_unique<FailureDetector>();
    p.liveness = std::make_unique<DetectorLiveness>(*p.detector);
    GossipRoundOptions options;
    options.self = infos_[i];
    options.generation = uint64_t(net_.now()) + 2;  // a process start time: later each run
    options.seeds = seeds_;
    options.partitionBits = PARTITION_BITS;
    p.round = std::make_unique<GossipRound>(
        options, disks_[i].state ? *disks_[i].state : MembershipState(), *p.liveness);
    persist(i);
    net_.after(i, uniform(0, INTERVAL), [this, i]() { gossipRound(i); });
  }

  void persist(size_t i) {
    disks_[i].state = round(i).state();
    disks_[i].writes++;
  }

  void apply(size_t i, GossipChanges changes) {
    // The transfers a new map starts finish at once.
    if (!changes.adopted.empty()) round(i).setPendingTransfers(0);
    if (changes.durable) persist(i);
  }

  void gossipRound(size_t i) {
    auto now = net_.now();
    apply(i, round(i).beginRound(now, 0));
    auto exchange = round(i).pickExchange(now);
    if (!exchange) return next(i);
    size_t peer = index_.at(exchange->peer);
    auto done = std::make_shared<bool>(false);
    uint64_t incarnation = net_.incarnation(i);
    net_.send(i, peer,
              [this, i, peer, incarnation, done, message = std::move(exchange->message)]() {
                // At the peer: storaged's Membership::gossip (a process not started yet answers
                // nothing).
                if (!processes_[peer].round) return;
                apply(peer, round(peer).receive(message, net_.now()));
                auto reply = round(peer).reply(message.mapVersion);
                net_.send(peer, i, [this, i, peer, incarnation, done, reply = std::move(reply)]() {
                  if (*done || net_.incarnation(i) != incarnation) return;
                  *done = true;
                  processes_[i].detector->callSucceeded(infos_[peer].address);
                  apply(i, round(i).receive(reply, net_.now()));
                  next(i);
                });
              });
    net_.after(i, EXCHANGE_TIMEOUT, [this, i, peer, done]() {
      if (*done) return;
      *done = true;
      processes_[i].detector->callFailed(infos_[peer].address, net_.now());
      next(i);
    });
  }

  void next(size_t i) {
    net_.after(i, round(i).takeEager() ? EAGER : INTERVAL, [this, i]() { gossipRound(i); });
  }

  std::vector<size_t> commandTargets() {
    // The running nodes an operator's command may go to. Not one about to die for good: a
    // change it acknowledged and had no round to gossip would die with it (the operator would
    // see the node gone, and repeat the command elsewhere).
    std::vector<size_t> running;
    for (size_t i = 0; i < NODES; i++) {
      if (net_.up(i) && processes_[i].round && deadForGood_.count(i) == 0) running.push_back(i);
    }
    return running;
  }

  void admin(size_t target, MemberStatus status) {
    // `dynkv admin join|leave ADDRESS` sent to a random running node; retried while that node
    // does not know the address yet (as the CLI's caller does on "unknown node").
    auto running = commandTargets();
    auto retry = [this, target, status]() {
      net_.at(net_.now() + 500'000, [this, target, status]() { admin(target, status); });
    };
    if (running.empty()) return retry();
    size_t at = running[net_.rng()() % running.size()];
    auto& address = infos_[target].address;
    auto member = round(at).state().find(infos_[target].id);
    if (member == nullptr) return retry();
    if (status == MemberStatus::UP) {
      apply(at, round(at).join(address));
    } else {
      if (member->status != MemberStatus::UP && member->status != MemberStatus::LEAVING) {
        return retry();
      }
      apply(at, round(at).leave(address));
    }
  }

  void forceRemove(size_t target, int refusals = 0) {
    // `dynkv admin remove --force ADDRESS` sent to a random running node; the operator tries
    // again while that node still believes the target alive, or has not heard from it since
    // it restarted (the command is refused then), and after ten refusals insists
    // (--even-if-alive), as when every node restarted after the target died.
    auto running = commandTargets();
    auto retry = [this, target](int refused) {
      net_.at(net_.now() + 500'000, [this, target, refused]() { forceRemove(target, refused); });
    };
    if (running.empty()) return retry(refusals);
    size_t at = running[net_.rng()() % running.size()];
    auto id = infos_[target].id;
    if (round(at).state().find(id) == nullptr || !round(at).suspected(id, net_.now())) {
      return retry(refusals);
    }
    bool insist = refusals >= 10;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      apply(at, round(at).forceRemove(infos_[target].address, net_.now(), insist));
    })) {
      REQUIRE_THAT(e->getDescription().cStr(), Catch::StartsWith("refused: "));
      return retry(refusals + 1);
    }
  }

  uint64_t totalWrites() const {
    uint64_t total = 0;
    for (auto& d : disks_) total += d.writes;
    return total;
  }

  std::string checkSafety() {
    for (size_t i = 0; i < NODES; i++) {
      if (!processes_[i].round) continue;
      auto& state = round(i).state();
      for (auto id : removedSeen_[i]) {
        auto m = state.find(id);
        if (m == nullptr || m->status != MemberStatus::REMOVED) {
          return "node " + std::to_string(i + 1) + " saw node " + std::to_string(id) +
                 " removed, and now has it " + (m ? toString(m->status) : "unknown");
        }
      }
      for (auto& [id, m] : state.members()) {
        if (m.status == MemberStatus::REMOVED) removedSeen_[i].insert(id);
      }
      for (auto& node : state.map()->nodes()) {
        auto m = state.find(node.id);
        // A force-removed node is removed before a map without it exists: the designated
        // node's next round makes one. Only a node that left must be out of the map first.
        bool forced = deadForGood_.count(size_t(node.id - 1)) != 0;
        if (m != nullptr && m->status == MemberStatus::REMOVED && !forced) {
          return "node " + std::to_string(i + 1) + "'s map v" +
                 std::to_string(state.map()->version()) + " holds removed node " +
                 std::to_string(node.id);
        }
      }
    }
    return "";
  }

  std::string converged() {
    const MembershipState* reference = nullptr;
    for (size_t i = 0; i < NODES; i++) {
      if (deadForGood_.count(i)) continue;
      if (!processes_[i].round) return "node " + std::to_string(i + 1) + " is not running";
      auto& state = round(i).state();
      auto who = "node " + std::to_string(i + 1) + ": ";
      if (state.members().size() != NODES) {
        return who + "knows " + std::to_string(state.members().size()) + " members";
      }
      for (auto& [index, status] : expected_) {
        auto m = state.find(infos_[index].id);
        if (m->status != status) {
          return who + "has node " + std::to_string(index + 1) + " " + toString(m->status) +
                 ", not " + toString(status);
        }
        if (reference && m->statusVersion != reference->find(m->info.id)->statusVersion) {
          return who + "disagrees on node " + std::to_string(index + 1) + "'s status version";
        }
      }
      if (!state.mapIsCurrent()) return who + "its map does not hold exactly the up members";
      if (reference && state.map()->version() != reference->map()->version()) {
        return who + "map v" + std::to_string(state.map()->version()) + ", others v" +
               std::to_string(reference->map()->version());
      }
      if (!reference) reference = &state;
    }
    return "";
  }
};

TEST_CASE(
    "simulation: 100-node membership with joins, leaves, loss, a partition and crashes "
    "converges") {
  auto seeds = seedsToRun();
  auto started = std::chrono::steady_clock::now();
  uint64_t failing = 0;
  Micros slowest = 0, total = 0;
  std::string firstFailure;
  for (uint64_t seed = seeds.first; seed < seeds.end(); seed++) {
    MembershipSimulation simulation(seed);
    Micros after = 0;
    auto problem = simulation.run(&after);
    if (!problem.empty()) {
      if (failing++ == 0) {
        firstFailure = "seed " + std::to_string(seed) + ": " + problem +
                       " (replay: DYNKV_SIM_SEED=" + std::to_string(seed) + ")";
      }
      continue;
    }
    slowest = std::max(slowest, after);
    total += after;
  }
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  uint64_t passed = seeds.count - failing;
  std::cout << "membership: " << seeds.count << " seeds of " << NODES << " nodes, " << failing
            << " failing; converged " << (passed ? double(total) / double(passed) / 1e6 : 0)
            << " s (mean), " << double(slowest) / 1e6
            << " s (max) of simulated time after the last fault; " << seconds << " s to run"
            << (firstFailure.empty() ? "" : "; first: " + firstFailure) << std::endl;
  CHECK(failing == 0);
}

}  // namespace
}  // namespace dynkv::sim
