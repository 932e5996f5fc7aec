// The request driver over fake replicas: no sockets, and time driven by a kj::TimerImpl, so
// a replica that never answers costs nothing but an advanceTo().
#include "request-driver.h"

#include <kj/async.h>
#include <kj/debug.h>
#include <kj/timer.h>

#include <catch2/catch.hpp>
#include <map>

#include "hash.h"

namespace dynkv {
namespace {

enum class Behaviour { ANSWER, SILENT, DOWN };

class FakeReplicas final : public Replicas {
  // Each node answers at once with `stored` (and acks writes), never answers, or is down
  // (DISCONNECTED), as `behaviour` says; every call is recorded.
 public:
  std::map<uint64_t, Behaviour> behaviour;  // by node id; ANSWER if unlisted
  Object stored;
  std::vector<uint64_t> asked;         // node ids, in the order they were asked
  std::vector<uint64_t> gaveUp;        // node ids the driver gave up on (timedOut)
  std::map<uint64_t, uint64_t> hints;  // node id -> the owner a replicate asked it to hint for
  std::vector<uint64_t> writeIds;      // each coordinatePut's, in the order they were asked

  kj::Promise<Reply<std::optional<Object>>> get(const NodeInfo& node, const ReplicaKey&) override {
    return respond(node, [this]() -> Reply<std::optional<Object>> { return stored; });
  }

  kj::Promise<Reply<Object>> coordinatePut(const NodeInfo& node, const ReplicaKey&,
                                           const WriteContext& context,
                                           const std::optional<std::string>& value,
                                           uint64_t writeId) override {
    writeIds.push_back(writeId);
    return respond(node, [&node, &context, value, writeId]() -> Reply<Object> {
      return dynkv::coordinatePut(Object{}, Actor{node.id, 1}, context, value, 10, 0, writeId);
    });
  }

  kj::Promise<void> replicate(const NodeInfo& node, const ReplicaKey&, const Object&,
                              uint64_t hintFor) override {
    if (hintFor != 0) hints[node.id] = hintFor;
    return respond(node, []() {});
  }

  void timedOut(const NodeInfo& node) override { gaveUp.push_back(node.id); }
  bool suspect(const NodeInfo&) const override { return false; }

 private:
  template <typename Func>
  auto respond(const NodeInfo& node, Func answer) -> kj::Promise<decltype(answer())> {
    asked.push_back(node.id);
    auto it = behaviour.find(node.id);
    switch (it == behaviour.end() ? Behaviour::ANSWER : it->second) {
      case Behaviour::ANSWER:
        return kj::evalLater(kj::mv(answer));
      case Behaviour::SILENT:
        return kj::NEVER_DONE;
      case Behaviour::DOWN:
        return KJ_EXCEPTION(DISCONNECTED, "connection refused");
    }
    KJ_UNREACHABLE;
  }
};

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope waitScope{loop};
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  FakeReplicas replicas;
  RequestDriver driver{replicas, timer};
  MapSnapshot map = std::make_shared<const PartitionMap>(
      PartitionMap::build({NodeInfo{1, "a", "a:1", "", 1}, NodeInfo{2, "b", "b:1", "", 1},
                           NodeInfo{3, "c", "c:1", "", 1}, NodeInfo{4, "d", "d:1", "", 1},
                           NodeInfo{5, "e", "e:1", "", 1}, NodeInfo{6, "f", "f:1", "", 1},
                           NodeInfo{7, "g", "g:1", "", 1}, NodeInfo{8, "h", "h:1", "", 1}},
                          4, 1));
  Quorum quorum{3, 3, 3, 1000 * kj::MILLISECONDS};

  CoordinatedCall call(Versioning kind = Versioning::VECTOR_CLOCK) {
    return CoordinatedCall{map, "", "cart", kind, quorum};
  }

  PreferenceList pref() const {
    return map->preferenceList(map->partitionOf(keyHash("", "cart")), quorum.n, 8);
  }
  uint64_t idAt(size_t i) const { return map->nodes()[pref().nodes[i]].id; }

  template <typename T>
  T settle(kj::Promise<T>& promise) {
    // Runs the loop, advancing time a replica timeout at a time, until the call is decided.
    for (int i = 0; i < 10 && !promise.poll(waitScope); i++) {
      timer.advanceTo(timer.now() + quorum.replicaTimeout());
    }
    REQUIRE(promise.poll(waitScope));
    return promise.wait(waitScope);
  }
};

TEST_CASE("request driver: a replica that never answers times out and a fallback stands in") {
  Fixture f;
  f.replicas.stored = coordinatePut(Object{}, Actor{9, 1}, {}, std::string("milk"), 5);
  uint64_t silent = f.idAt(1);
  f.replicas.behaviour[silent] = Behaviour::SILENT;

  auto read = f.driver.read(f.call());
  auto outcome = f.settle(read);

  REQUIRE_FALSE(outcome.failure);
  CHECK(outcome.merged == f.replicas.stored);
  CHECK(f.replicas.gaveUp == std::vector<uint64_t>{silent});
  // The primaries, then the first fallback for the silent one.
  CHECK(f.replicas.asked == std::vector<uint64_t>{f.idAt(0), silent, f.idAt(2), f.idAt(3)});
}

TEST_CASE("request driver: a write replaces an unreachable replica by a fallback hinting for it") {
  Fixture f;
  uint64_t down = f.idAt(2);
  f.replicas.behaviour[down] = Behaviour::DOWN;

  auto write = f.driver.write(f.call(), Write{std::string("milk"), {}, 0});
  auto outcome = f.settle(write);

  REQUIRE_FALSE(outcome.failure);
  CHECK(outcome.coordinator == f.idAt(0));
  REQUIRE(outcome.object.siblings.size() == 1);
  CHECK(outcome.object.siblings[0].value == "milk");
  CHECK(f.replicas.hints == std::map<uint64_t, uint64_t>{{f.idAt(3), down}});
  CHECK(f.replicas.gaveUp.empty());  // refused at once: no timeout was needed
}

TEST_CASE("request driver: a coordinator that never answers is replaced, under the same name") {
  Fixture f;
  uint64_t silent = f.idAt(0);
  f.replicas.behaviour[silent] = Behaviour::SILENT;

  auto write = f.driver.write(f.call(), Write{std::string("milk"), {}, 0});
  auto outcome = f.settle(write);

  REQUIRE_FALSE(outcome.failure);
  CHECK(outcome.coordinator == f.idAt(1));
  // Both attempts carry one drawn name: should the silent one have minted its version, the
  // two are twins, and whatever supersedes one supersedes both (dvv.h).
  REQUIRE(f.replicas.writeIds.size() == 2);
  CHECK(f.replicas.writeIds[0] != 0);
  CHECK(f.replicas.writeIds[0] == f.replicas.writeIds[1]);
  REQUIRE(outcome.object.siblings.size() == 1);
  CHECK(outcome.object.siblings[0].writeId == f.replicas.writeIds[0]);

  // The next write draws another.
  auto next = f.driver.write(f.call(), Write{std::string("eggs"), {}, 0});
  f.settle(next);
  REQUIRE(f.replicas.writeIds.size() == 4);
  CHECK(f.replicas.writeIds[2] != f.replicas.writeIds[0]);
}

TEST_CASE("request driver: the call's deadline fails a call nobody answers, with TIMEOUT") {
  Fixture f;
  // R=1 and five fallbacks: replica timeouts alone cannot fail the call before its deadline.
  f.quorum.r = 1;
  for (auto& node : f.map->nodes()) f.replicas.behaviour[node.id] = Behaviour::SILENT;

  auto read = f.driver.read(f.call());
  auto outcome = f.settle(read);

  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::TIMEOUT);
  CHECK(outcome.failure->got == 0);
  CHECK(outcome.failure->required == 1);
}

TEST_CASE("request driver: R larger than the cluster is the caller's mistake") {
  Fixture f;
  f.quorum = Quorum{9, 9, 9, 1000 * kj::MILLISECONDS};
  auto read = f.driver.read(f.call());
  auto outcome = f.settle(read);
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::INVALID_ARGUMENT);
  CHECK(outcome.failure->message == "R=9 but the cluster has only 8 nodes");
  CHECK(f.replicas.asked.empty());
}

TEST_CASE("request driver: quorum settings are checked with a message naming the rule") {
  CHECK_FALSE(checkQuorum(3, 2, 2, 1000));
  CHECK(checkQuorum(3, 4, 2, 1000) ==
        std::string("quorum must satisfy 1 <= R <= N and 1 <= W <= N (got N=3 R=4 W=2)"));
  CHECK(checkQuorum(65, 2, 2, 1000) == std::string("N is at most 64"));
  CHECK(checkQuorum(3, 2, 2, 0) == std::string("timeout must be positive"));
}

}  // namespace
}  // namespace dynkv
