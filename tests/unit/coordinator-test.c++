// The coordinator core (common/coordinator/): quorum counters, routing, and the read and
// write coordinators, fed events directly: no sockets, no clock.
#include <catch2/catch.hpp>
#include <set>

#include "quorum.h"
#include "read-coordinator.h"
#include "write-coordinator.h"

namespace dynkv {
namespace {

Object versionAt(uint64_t node, const char* value) {
  return coordinatePut(Object{}, Actor{node, 1}, {}, std::string(value), int64_t(node));
}

TEST_CASE("read quorum: succeeds at R answers with the sync of them") {
  ReadQuorum q(2, 3);
  auto a = versionAt(1, "a"), b = versionAt(2, "b");
  q.answered(0, a);
  CHECK_FALSE(q.succeeded());
  q.answered(2, b);
  CHECK(q.succeeded());
  CHECK(q.merged() == sync(a, b));
  CHECK_FALSE(q.settled());
}

TEST_CASE("read quorum: fails for good once R answers can no longer come") {
  ReadQuorum q(2, 3);
  q.failed(0, ReplicaError::REFUSED, "refused");
  CHECK_FALSE(q.failedForGood());
  q.failed(1, ReplicaError::TIMEOUT, "");
  CHECK(q.failedForGood());
  // A fallback joining revives it.
  size_t extra = q.addReplica();
  CHECK_FALSE(q.failedForGood());
  q.answered(2, std::nullopt);
  q.answered(extra, std::nullopt);
  CHECK(q.succeeded());
  CHECK(q.merged().empty());
}

TEST_CASE("read quorum: stale replicas are those whose copy differs from the merge") {
  ReadQuorum q(2, 3);
  auto a = versionAt(1, "a");
  auto ab = sync(a, versionAt(2, "b"));
  q.answered(0, ab);
  q.answered(1, a);
  q.answered(2, std::nullopt);
  CHECK(q.settled());
  CHECK(q.staleReplicas() == std::vector<size_t>{1, 2});
}

TEST_CASE("write quorum: W acks succeed and failures past N - W fail") {
  WriteQuorum q(2, 3);
  q.acked(0);
  q.failed(1, ReplicaError::UNREACHABLE, "down");
  CHECK_FALSE(q.succeeded());
  CHECK_FALSE(q.failedForGood());
  q.acked(2);
  CHECK(q.succeeded());

  WriteQuorum bad(2, 3);
  bad.failed(0, ReplicaError::UNREACHABLE, "down");
  bad.failed(1, ReplicaError::REFUSED, "full");
  CHECK(bad.failedForGood());
  CHECK(bad.replicas()[1].error == ReplicaError::REFUSED);
}

// ---- Routing and the coordinators ----

PartitionMap fiveNodes() {
  std::vector<NodeInfo> nodes;
  for (uint64_t id = 1; id <= 5; id++) {
    nodes.push_back(
        NodeInfo{id, "n" + std::to_string(id), "10.0.0." + std::to_string(id) + ":1", "", 1});
  }
  return PartitionMap::build(nodes, 4, 1);
}

class FakeHealth final : public Health {
 public:
  std::set<uint16_t> suspects;
  bool suspect(uint16_t node) const override { return suspects.count(node) != 0; }
};

TEST_CASE("router: a suspected primary is replaced by a healthy fallback standing in for it") {
  auto map = fiveNodes();
  auto pref = map.preferenceList(0, 3, 2);
  FakeHealth health;
  health.suspects.insert(pref.nodes[1]);
  Router router(map, pref);
  auto targets = router.initial(health);
  REQUIRE(targets.size() == 3);
  CHECK(targets[0].node == pref.nodes[0]);
  CHECK(targets[1].node == pref.nodes[3]);
  CHECK(targets[1].hintFor == map.nodes()[pref.nodes[1]].id);
  CHECK(targets[2].node == pref.nodes[2]);
  // The last fallback; then none is left.
  auto next = router.takeFallback(map.nodes()[pref.nodes[0]].id, health);
  REQUIRE(next);
  CHECK(next->node == pref.nodes[4]);
  CHECK_FALSE(router.takeFallback(1, health));
}

TEST_CASE("read coordinator: answers at R with the merge, then repairs the stale owner") {
  auto map = fiveNodes();
  FakeHealth health;
  ReadCoordinator read(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK);
  auto start = read.start(health);
  CHECK(start.send == std::vector<size_t>{0, 1, 2});
  auto a = versionAt(1, "a"), ab = sync(a, versionAt(2, "b"));
  CHECK_FALSE(read.onAnswer(0, ab, health).decided);
  auto second = read.onAnswer(1, a, health);
  CHECK(second.decided);
  CHECK(read.succeeded());
  CHECK(read.merged() == ab);
  CHECK(read.fastest() == map.nodes()[read.target(0).node].id);
  CHECK(second.repair.empty());  // not every replica has answered yet
  auto last = read.onAnswer(2, std::nullopt, health);
  CHECK_FALSE(last.decided);
  CHECK(last.repair == std::vector<size_t>{1, 2});
}

TEST_CASE("read coordinator: a failed owner is replaced; a fallback without a copy is no answer") {
  auto map = fiveNodes();
  FakeHealth health;
  ReadCoordinator read(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK);
  read.start(health);
  auto failed = read.onFailure(0, ReplicaError::UNREACHABLE, "connection refused", health);
  REQUIRE(failed.send.size() == 1);
  size_t fallback = failed.send[0];
  CHECK(read.target(fallback).isFallback());
  // The fallback holds nothing: that "not found" must not count toward R, and no further
  // fallback is asked in its place.
  auto none = read.onAnswer(fallback, std::nullopt, health);
  CHECK(none.send.empty());
  CHECK_FALSE(none.decided);
  read.onAnswer(1, versionAt(2, "b"), health);
  auto last = read.onFailure(2, ReplicaError::TIMEOUT, "", health);
  REQUIRE(last.send.size() == 1);
  auto decided = read.onAnswer(last.send[0], versionAt(2, "b"), health);
  CHECK(decided.decided);
  CHECK(read.succeeded());
}

TEST_CASE("read coordinator: refusals are not retried, and all-invalid is the caller's mistake") {
  auto map = fiveNodes();
  FakeHealth health;
  ReadCoordinator read(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK);
  read.start(health);
  CHECK(read.onFailure(0, ReplicaError::INVALID_REQUEST, "invalid argument; key too long", health)
            .send.empty());
  auto second =
      read.onFailure(1, ReplicaError::INVALID_REQUEST, "invalid argument; too long", health);
  CHECK(second.decided);
  CHECK_FALSE(read.succeeded());
  CHECK(read.failure().kind == FailureKind::INVALID_ARGUMENT);
  CHECK(read.failure().faults.size() == 2);
}

TEST_CASE("read coordinator: a copy of the other namespace kind is a malformed answer") {
  auto map = fiveNodes();
  FakeHealth health;
  ReadCoordinator read(map, map.preferenceList(0, 3, 2), 1, Versioning::LAST_WRITE_WINS);
  read.start(health);
  auto actions = read.onAnswer(0, versionAt(1, "vc"), health);
  CHECK_FALSE(actions.decided);
  CHECK(actions.send.empty());
  CHECK(read.onAnswer(1, lastWriteWinsObject(std::string("x"), 5), health).decided);
}

TEST_CASE("read coordinator: the deadline fails an undecided read with TIMEOUT") {
  auto map = fiveNodes();
  FakeHealth health;
  ReadCoordinator read(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK);
  read.start(health);
  read.onAnswer(0, std::nullopt, health);
  read.onDeadline();
  CHECK(read.decided());
  CHECK(read.failure().kind == FailureKind::TIMEOUT);
  CHECK(read.failure().got == 1);
  CHECK(read.failure().required == 2);
  // Late answers decide nothing any more.
  CHECK_FALSE(read.onAnswer(1, std::nullopt, health).decided);
}

TEST_CASE("write coordinator: the read's fastest owner coordinates, then the rest replicate") {
  auto map = fiveNodes();
  FakeHealth health;
  auto pref = map.preferenceList(0, 3, 2);
  uint64_t fastest = map.nodes()[pref.nodes[2]].id;
  WriteCoordinator write(map, pref, 2, Versioning::VECTOR_CLOCK, fastest, std::nullopt);
  auto start = write.start(health);
  REQUIRE(start.coordinate);
  CHECK(*start.coordinate == 2);
  CHECK(start.replicate.empty());
  auto minted = write.onCoordinated(2, versionAt(fastest, "v"));
  CHECK(minted.replicate == std::vector<size_t>{0, 1});
  CHECK_FALSE(minted.decided);
  CHECK(write.onAck(0).decided);
  CHECK(write.succeeded());
  CHECK(write.coordinator() == fastest);
}

TEST_CASE("write coordinator: a coordinator that fails before minting is replaced") {
  auto map = fiveNodes();
  FakeHealth health;
  WriteCoordinator write(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK, 0,
                         std::nullopt);
  auto start = write.start(health);
  CHECK(*start.coordinate == 0);
  auto failed = write.onFailure(0, ReplicaError::UNREACHABLE, "down", health);
  // A fallback takes the failed owner's place (its copy will be a hint), and the next owner
  // coordinates: a fallback never does while an owner can.
  REQUIRE(failed.coordinate);
  CHECK(*failed.coordinate == 1);
  CHECK(failed.replicate.empty());  // nothing to replicate until a version is minted
  auto minted = write.onCoordinated(1, versionAt(2, "v"));
  std::vector<size_t> sent = minted.replicate;
  std::sort(sent.begin(), sent.end());
  REQUIRE(sent == std::vector<size_t>{2, 3});
  CHECK(write.target(3).isFallback());
  CHECK(write.target(3).hintFor == map.nodes()[write.target(0).node].id);
  CHECK(write.onAck(3).decided);  // a hinted ack counts toward W
}

TEST_CASE("write coordinator: a refusing coordinator is replaced; past N - W refusals it fails") {
  auto map = fiveNodes();
  FakeHealth health;
  WriteCoordinator write(map, map.preferenceList(0, 3, 2), 2, Versioning::VECTOR_CLOCK, 0,
                         std::nullopt);
  write.start(health);
  // A coordinator that refuses (its disk is full) stored nothing: the next owner coordinates.
  auto first = write.onFailure(0, ReplicaError::REFUSED, "disk full", health);
  CHECK_FALSE(first.decided);
  REQUIRE(first.coordinate);
  CHECK(*first.coordinate == 1);
  CHECK(first.replicate.empty());  // it answered: no fallback stands in for it
  // A second refusal leaves one replica for W=2: the write fails, rejected, with nothing
  // written anywhere.
  auto second = write.onFailure(1, ReplicaError::REFUSED, "disk full", health);
  CHECK(second.decided);
  CHECK_FALSE(second.coordinate);
  CHECK(write.failure().kind == FailureKind::REJECTED);
  CHECK(write.failure().faults.size() == 2);
}

TEST_CASE("write coordinator: last-write-wins goes to all N at once") {
  auto map = fiveNodes();
  FakeHealth health;
  WriteCoordinator write(map, map.preferenceList(0, 3, 2), 2, Versioning::LAST_WRITE_WINS, 0,
                         lastWriteWinsObject(std::string("x"), 7));
  auto start = write.start(health);
  CHECK_FALSE(start.coordinate);
  CHECK(start.replicate == std::vector<size_t>{0, 1, 2});
  auto failed = write.onFailure(1, ReplicaError::TIMEOUT, "", health);
  CHECK(failed.replicate == std::vector<size_t>{3});  // the fallback gets the object at once
  write.onAck(0);
  CHECK(write.onAck(3).decided);
  CHECK(write.coordinator() == 0);
}

}  // namespace
}  // namespace dynkv
