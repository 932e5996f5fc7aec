// storaged's gossip shell (GossipMembership) in one process: three nodes on loopback, each wired
// as storaged/main.c++ wires it (its own engine, group commit, failure detector, node pool and
// gossip loop, its gateway served with serve()), gossiping every 50 ms. The round's decisions
// are tested purely in tests/unit/gossip-round-test.c++; this is what the shell does with them:
// exchanges over the pool, what it keeps in the engine and when, a restart from what it kept,
// status, and the one failure detector it shares with routing.
//
// Time is kj's real timer here: every wait is on a condition, checked as the event loop turns
// and bounded by DEADLINE (a guard against a hang, not a measurement).
#include "gossip.h"

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/debug.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <sstream>
#include <tuple>

#include "accept-loop.h"
#include "codec.h"
#include "group-commit.h"
#include "hash-trees.h"
#include "hint-store.h"
#include "service.h"
#include "versioned-store.h"

namespace dynkv::storaged {
namespace {

constexpr auto INTERVAL = 50 * kj::MILLISECONDS;
constexpr auto DEADLINE = 10 * kj::SECONDS;
constexpr uint32_t PARTITION_BITS = 6;

struct Node;

struct Process {
  // One storaged process over a node's engine, wired as main.c++ wires it (minus transfers and
  // hinted handoff, which gossip only informs).
  Process(kj::AsyncIoContext& io, const Limits& limits, Node& node, uint64_t generation,
          std::vector<std::string> seeds);

  kj::Timer& timer;
  GroupCommit commits;
  HintStore hints;
  HashTrees trees;
  VersionedStore store;
  FailureDetector detector;  // the process's one: the pool's, and the gossip round's liveness
  NodePool pool;
  GossipMembership membership;

  kj::Own<kj::ConnectionReceiver> listener;
  kj::Own<Service> service;
  kj::Promise<void> serving = nullptr;
  kj::Promise<void> gossiping = nullptr;
  // Destroyed first: the loop, the connections (which hold the gateway), the port.

  void start(kj::Own<kj::ConnectionReceiver> on, const Limits& limits) {
    listener = kj::mv(on);
    serving = nullptr;
    service = kj::heap<Service>(store, hints, membership, timer, ServiceOptions{"test", "s3cret"});
    serving = serve(*listener, [this]() { return service->connect(); },
                    AcceptOptions{readerOptionsFor(limits.maxValueBytes)})
                  .eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(ERROR, "serving failed", e); });
    gossiping =
        membership.run().eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(ERROR, "gossip", e); });
  }

  void stop() {
    // As if the process froze: no more rounds, every connection to it dropped, its port closed
    // (a connection is refused).
    gossiping = nullptr;
    serving = nullptr;
    listener = nullptr;
  }
};

struct Node {
  // What outlives a process: the node's identity, its address and its engine (its disk).
  Node(kj::AsyncIoContext& io, uint64_t id, std::string name)
      : id(id),
        name(kj::mv(name)),
        firstListener(
            io.provider->getNetwork().parseAddress("127.0.0.1:0").wait(io.waitScope)->listen()),
        port(firstListener->getPort()),
        address("127.0.0.1:" + std::to_string(port)) {}

  uint64_t id;
  std::string name;
  kj::Own<kj::ConnectionReceiver> firstListener;  // bound at once, so the address is known
  uint port;
  std::string address;
  kj::Own<StorageEngine> engine = newMemoryEngine();
  kj::Own<Process> process;

  GossipMembership& membership() { return process->membership; }
};

Process::Process(kj::AsyncIoContext& io, const Limits& limits, Node& node, uint64_t generation,
                 std::vector<std::string> seeds)
    : timer(io.provider->getTimer()),
      commits(*node.engine),
      hints(commits, limits),
      trees(*node.engine, limits),
      store(commits, hints, trees, Actor{node.id, 1}, limits),
      pool(io.provider->getNetwork(), io.provider->getTimer(), detector, "test", "s3cret",
           limits.maxValueBytes),
      membership(
          [&]() {
            GossipOptions options;
            options.self = NodeInfo{node.id, node.name, node.address, "", 1};
            options.generation = generation;
            options.seeds = kj::mv(seeds);
            options.partitionBits = PARTITION_BITS;
            options.interval = INTERVAL;
            return options;
          }(),
          commits, pool, detector, io.provider->getTimer()) {}

struct Reported {
  // One member's line in a node's status output.
  MemberStatus status;
  double phi;
  bool suspected;
};

struct Cluster {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  kj::Timer& timer = io.provider->getTimer();
  Limits limits;
  Node a{io, 1, "a"}, b{io, 2, "b"}, c{io, 3, "c"};
  std::vector<Node*> nodes{&a, &b, &c};

  Cluster() {
    // Every node is started with one seed, a, as an operator would start them.
    for (auto* node : nodes) {
      node->process = kj::heap<Process>(io, limits, *node, 1, seeds());
      node->process->start(kj::mv(node->firstListener), limits);
    }
  }

  std::vector<std::string> seeds() const { return {a.address}; }

  void restart(Node& node, uint64_t generation) {
    // The process ends (nothing it had queued runs) and a new one starts over the same engine,
    // not yet serving nor gossiping.
    node.process = nullptr;
    node.process = kj::heap<Process>(io, limits, node, generation, seeds());
  }

  void start(Node& node) { node.process->start(listen(node.port), limits); }

  kj::Own<kj::ConnectionReceiver> listen(uint port) {
    auto where = "127.0.0.1:" + std::to_string(port);
    return io.provider->getNetwork().parseAddress(where).wait(io.waitScope)->listen();
  }

  bool eventually(kj::Function<bool()> condition) {
    // Runs the event loop until `condition` holds, checking it every few milliseconds; false
    // if it still does not after DEADLINE.
    return timer.timeoutAfter(DEADLINE, until(condition))
        .then([]() { return true; },
              [](kj::Exception&& e) {
                if (e.getType() != kj::Exception::Type::OVERLOADED) {
                  kj::throwFatalException(kj::mv(e));
                }
                return false;  // timed out
              })
        .wait(io.waitScope);
  }

  kj::Promise<void> until(kj::Function<bool()>& condition) {
    if (condition()) return kj::READY_NOW;
    return timer.afterDelay(5 * kj::MILLISECONDS).then([this, &condition]() {
      return until(condition);
    });
  }

  static const Member* view(Node& at, const Node& of) {
    // `at`'s record of `of`, or null if it does not know it.
    return at.membership().state().find(of.id);
  }

  bool knowsEveryone(Node& at) {
    for (auto* node : nodes) {
      if (view(at, *node) == nullptr) return false;
    }
    return at.membership().state().members().size() == nodes.size();
  }

  static std::vector<std::tuple<uint64_t, MemberStatus, uint64_t>> statuses(Node& at) {
    std::vector<std::tuple<uint64_t, MemberStatus, uint64_t>> out;
    for (auto& [id, m] : at.membership().state().members()) {
      out.emplace_back(id, m.status, m.statusVersion);
    }
    return out;
  }

  bool converged(const std::vector<uint64_t>& ring) {
    // Every node routes by the same map, which holds exactly `ring`, and every node agrees on
    // every member's status.
    auto map = a.membership().current();
    std::vector<uint64_t> held;
    for (auto& info : map->nodes()) held.push_back(info.id);
    std::sort(held.begin(), held.end());
    if (held != ring) return false;
    for (auto* node : nodes) {
      if (!(*node->membership().current() == *map)) return false;
      if (statuses(*node) != statuses(a)) return false;
    }
    return true;
  }

  void joinAll() {
    REQUIRE(eventually([&]() { return knowsEveryone(a); }));
    for (auto* node : nodes) a.membership().join(node->address);
    bool joined = eventually([&]() { return converged({a.id, b.id, c.id}); });
    INFO(describe());
    REQUIRE(joined);
  }

  static std::optional<Reported> reported(Node& at, const Node& of) {
    // `of`'s line in `at`'s status output (what `dynkv admin status` prints).
    capnp::MallocMessageBuilder message;
    auto out = message.initRoot<wire::Admin::StatusResults>();
    at.membership().status(out);
    for (auto entry : out.asReader().getMembers()) {
      auto member = decodeMember(entry.getMember());
      if (member.info.id == of.id) {
        return Reported{member.status, entry.getPhi(), entry.getSuspected()};
      }
    }
    return std::nullopt;
  }

  std::string describe() {
    // Every node's view, for a failure's message.
    std::ostringstream out;
    for (auto* at : nodes) {
      if (!at->process) continue;
      auto& membership = at->membership();
      out << at->name << ": map v" << membership.current()->version() << ", "
          << membership.current()->nodes().size() << " nodes, " << membership.writes()
          << " writes\n";
      for (auto& [id, m] : membership.state().members()) {
        out << "  " << m.info.name << " " << toString(m.status) << "/" << m.statusVersion << " gen "
            << m.generation << " hb " << m.heartbeat << " map v" << m.mapVersion
            << (membership.suspected(id) ? " suspected" : "") << "\n";
      }
    }
    return out.str();
  }
};

TEST_CASE(
    "gossip shell: nodes started with a seed learn of each other and converge on the map of "
    "the members an operator joined") {
  Cluster f;
  bool learnt = f.eventually([&]() {
    for (auto* node : f.nodes) {
      if (!f.knowsEveryone(*node)) return false;
    }
    return true;
  });
  INFO(f.describe());
  REQUIRE(learnt);
  for (auto* node : f.nodes) {
    CHECK(f.view(*node, *node)->status == MemberStatus::JOINING);  // known, not in the ring
    CHECK(node->membership().current()->empty());
  }

  // Two joins, on one node: the ring holds exactly those two, c stays known but out of it.
  f.a.membership().join(f.a.address);
  f.a.membership().join(f.b.address);
  bool two = f.eventually([&]() { return f.converged({f.a.id, f.b.id}); });
  INFO(f.describe());
  REQUIRE(two);
  auto first = f.a.membership().current()->version();
  for (auto* node : f.nodes) CHECK(f.view(*node, f.c)->status == MemberStatus::JOINING);

  f.a.membership().join(f.c.address);
  bool three = f.eventually([&]() { return f.converged({f.a.id, f.b.id, f.c.id}); });
  INFO(f.describe());
  REQUIRE(three);
  auto map = f.a.membership().current();
  CHECK(map->version() > first);
  for (auto* node : f.nodes) {
    CHECK(*node->membership().current() == *map);
    for (auto* member : f.nodes) CHECK(f.view(*node, *member)->status == MemberStatus::UP);
  }
}

TEST_CASE(
    "gossip shell: heartbeats alone write nothing, and an operator's leave is written before "
    "it is acknowledged") {
  Cluster f;
  f.joinAll();
  f.io.waitScope.poll();  // the last state write queued, if any, is committed

  std::vector<uint64_t> writes;
  for (auto* node : f.nodes) writes.push_back(node->membership().writes());
  std::map<std::pair<uint64_t, uint64_t>, uint64_t> heard;  // (at, of) -> heartbeat
  for (auto* at : f.nodes) {
    for (auto* of : f.nodes) heard[{at->id, of->id}] = f.view(*at, *of)->heartbeat;
  }

  // Twenty more rounds of every node, seen by every other: heartbeats went round, nothing
  // durable changed.
  constexpr uint64_t ROUNDS = 20;
  bool rounds = f.eventually([&]() {
    for (auto* at : f.nodes) {
      for (auto* of : f.nodes) {
        if (f.view(*at, *of)->heartbeat < heard[{at->id, of->id}] + ROUNDS) return false;
      }
    }
    return true;
  });
  INFO(f.describe());
  REQUIRE(rounds);
  for (size_t i = 0; i < f.nodes.size(); i++) {
    INFO(f.nodes[i]->name);
    CHECK(f.nodes[i]->membership().writes() == writes[i]);
  }

  // The operator takes c out through b: kept by the time leave() returns (the service answers
  // the operator then), not at the end of the turn.
  auto before = f.b.membership().writes();
  f.b.membership().leave(f.c.address);
  CHECK(f.b.membership().writes() == before + 1);

  // b crashes before its event loop turns again (its queued batch never runs): the leave
  // survives in what it kept.
  f.restart(f.b, 2);
  CHECK(f.view(f.b, f.c)->status == MemberStatus::LEAVING);
  f.start(f.b);

  // And it takes effect: the ring holds a and b, and c, with nothing to hand off, is removed.
  bool left = f.eventually([&]() {
    if (!f.converged({f.a.id, f.b.id})) return false;
    for (auto* at : f.nodes) {
      if (f.view(*at, f.c)->status != MemberStatus::REMOVED) return false;
    }
    return true;
  });
  INFO(f.describe());
  CHECK(left);
}

TEST_CASE(
    "gossip shell: a restarted node restores members, statuses and the map it kept, and "
    "the others see its new generation") {
  Cluster f;
  f.joinAll();
  f.io.waitScope.poll();
  auto map = f.c.membership().current();
  auto statuses = f.statuses(f.c);
  auto writesA = f.a.membership().writes();
  auto writesB = f.b.membership().writes();

  f.restart(f.c, 2);
  {
    // Before it talks to anyone: what it kept.
    auto& restored = f.c.membership();
    CHECK(f.statuses(f.c) == statuses);
    CHECK(*restored.current() == *map);
    auto* self = f.view(f.c, f.c);
    CHECK(self->generation == 2);
    CHECK(self->heartbeat == 0);
    CHECK(self->mapVersion == map->version());
    CHECK(restored.writes() == 1);  // its record with the new generation, kept at start-up
    // A record read from disk says nothing about now: nobody is believed alive yet.
    CHECK(restored.suspected(f.a.id));
    CHECK(restored.suspected(f.b.id));
  }
  f.start(f.c);

  bool seen = f.eventually([&]() {
    for (auto* at : {&f.a, &f.b}) {
      auto* record = f.view(*at, f.c);
      if (record->generation != 2 || record->heartbeat < 3) return false;
      if (at->membership().suspected(f.c.id)) return false;
    }
    return !f.c.membership().suspected(f.a.id) && !f.c.membership().suspected(f.b.id);
  });
  INFO(f.describe());
  REQUIRE(seen);
  CHECK(f.converged({f.a.id, f.b.id, f.c.id}));
  // A peer's restart at the same address changes nothing the others must keep.
  CHECK(f.a.membership().writes() == writesA);
  CHECK(f.b.membership().writes() == writesB);
}

TEST_CASE(
    "gossip shell: a stopped node is suspected by the failure detector routing uses, and "
    "status says so, until it is back") {
  Cluster f;
  f.joinAll();
  auto lastHeartbeat = [&](Node& at) { return f.view(at, f.c)->heartbeat; };

  f.c.process->stop();
  // Suspected by the detector each pool asks (routing's question), through both what gossip
  // calls found (refused) and c's heartbeats stopping (about 4 s with the detector's defaults);
  // and reported so, with that detector's phi.
  bool suspected = f.eventually([&]() {
    for (auto* at : {&f.a, &f.b}) {
      auto& pool = at->process->pool;
      auto line = f.reported(*at, f.c);
      if (!pool.isSuspect(f.c.address) || !line || !line->suspected) return false;
      if (at->process->detector.heartbeatPhi(f.c.address, pool.nowMicros()) <=
          PHI_SUSPECT_THRESHOLD) {
        return false;
      }
    }
    return true;
  });
  INFO(f.describe());
  REQUIRE(suspected);
  std::map<uint64_t, uint64_t> heardBefore;
  for (auto* at : {&f.a, &f.b}) {
    auto& pool = at->process->pool;
    auto line = f.reported(*at, f.c);
    REQUIRE(line);
    CHECK(line->status == MemberStatus::UP);    // suspected, still in the ring
    CHECK(line->phi == pool.phi(f.c.address));  // the same detector, at the same time
    CHECK(line->phi > PHI_SUSPECT_THRESHOLD);
    CHECK(*at->membership().current() == *f.c.membership().current());  // the ring is kept
    heardBefore[at->id] = lastHeartbeat(*at);
  }

  // Back on its port with the same generation: its heartbeats resume. a and b clear it once
  // the backoff of their last refused call has passed (a heartbeat does not end it, and they do
  // not call a suspect while others are alive): about 3 s here.
  f.start(f.c);
  bool cleared = f.eventually([&]() {
    for (auto* at : {&f.a, &f.b}) {
      auto line = f.reported(*at, f.c);
      if (lastHeartbeat(*at) <= heardBefore[at->id]) return false;  // nothing new from c yet
      if (at->process->pool.isSuspect(f.c.address) || !line || line->suspected) return false;
    }
    for (auto* of : {&f.a, &f.b}) {
      auto line = f.reported(f.c, *of);
      if (!line || line->suspected) return false;
    }
    return true;
  });
  INFO(f.describe());
  CHECK(cleared);
}

}  // namespace
}  // namespace dynkv::storaged
