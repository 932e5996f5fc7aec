// The fault suite's checker and records, on hand-built histories: what the checker must call
// a broken promise (a lost acknowledged write, a value nobody wrote, a delete undone, a stale
// register, a tombstone never collected), what it must not (indeterminate writes, concurrent
// siblings, a deleted key gone from every replica), and that a run's records read back as they
// were written.

#include "checker.h"

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "history.h"
#include "report.h"

namespace dynkv::faults {
namespace {

namespace fs = std::filesystem;

constexpr int64_t T0 = 1'700'000'000'000'000;  // an arbitrary wall-clock origin, in us

// An operation invoked `startMs` after T0 that took `durationMs`.
Operation op(OpKind kind, const std::string& key, const std::string& value, Outcome outcome,
             int64_t startMs = 0, int64_t durationMs = 10, std::vector<std::string> observed = {}) {
  Operation o;
  o.client = 1;
  o.thread = 2;
  o.kind = kind;
  o.key = key;
  o.value = value;
  o.observed = std::move(observed);
  o.invokeMicros = T0 + startMs * 1000;
  o.completeMicros = o.invokeMicros + durationMs * 1000;
  o.outcome = outcome;
  if (outcome != Outcome::OK) o.error = "UNAVAILABLE: not enough replicas";
  return o;
}

ReplicaCopy replica(const std::string& node, std::vector<std::string> values) {
  ReplicaCopy copy;
  copy.node = node;
  copy.found = true;
  copy.values = std::move(values);
  copy.digest = "00ff";
  return copy;
}

// A key whose final read returned `values` and whose three replicas all hold them.
KeyState key(const std::string& ns, const std::string& name, std::vector<std::string> values) {
  KeyState state;
  state.ns = ns;
  state.key = name;
  state.readOk = true;
  state.siblings = uint32_t(values.size());
  for (const char* node : {"127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"}) {
    state.replicas.push_back(replica(node, values));
  }
  state.values = std::move(values);
  return state;
}

KeyState unreadable(const std::string& ns, const std::string& name) {
  KeyState state;
  state.ns = ns;
  state.key = name;
  state.readError = "UNAVAILABLE: 1 of 3 replicas answered";
  return state;
}

FinalState converged(std::vector<KeyState> keys) {
  FinalState state;
  state.keys = std::move(keys);
  state.withoutReads = Convergence{true, 1.5, 0};
  state.tombstones = TombstoneCollection{true, 12.5, 0};
  state.afterReads = Convergence{true, 0.25, 0};
  return state;
}

// A key deleted and collected: no replica holds it, and the final read found nothing.
KeyState gone(const std::string& name) {
  KeyState state = key("", name, {});
  for (ReplicaCopy& copy : state.replicas) {
    copy.found = false;
    copy.digest.clear();
  }
  return state;
}

bool hasAnomaly(const CheckResult& result, const std::string& kind, const std::string& key,
                const std::string& value) {
  for (const Anomaly& a : result.anomalies) {
    if (a.kind == kind && a.key == key && a.value == value) return true;
  }
  return false;
}

TEST_CASE("checker: a clean history reports nothing") {
  std::vector<Operation> history = {
      op(OpKind::ADD, "set-1", "a", Outcome::OK, 0),
      op(OpKind::ADD, "set-1", "b", Outcome::OK, 5),
      op(OpKind::ADD, "set-1", "c", Outcome::FAIL, 6),
      op(OpKind::BLIND, "blind-1", "x", Outcome::OK, 7),
      op(OpKind::BLIND, "blind-1", "y", Outcome::UNKNOWN, 8),
      op(OpKind::PUT, "del-1", "p", Outcome::OK, 9),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 30, 10, {"p"}),
      op(OpKind::PUT, "del-1", "q", Outcome::OK, 50),
      op(OpKind::LWW, "lww-1", "old", Outcome::OK, 10),
      op(OpKind::LWW, "lww-1", "new", Outcome::OK, 40),
  };
  FinalState final = converged({key("", "set-1", {"a b", "a"}), key("", "blind-1", {"x"}),
                                key("", "del-1", {"q"}), key("lww", "lww-1", {"new"})});
  CheckResult result = check(history, final);
  CHECK(result.ops == 10);
  CHECK(result.acknowledged == 8);
  CHECK(result.failed == 1);
  CHECK(result.unknown == 1);
  CHECK(result.lost == 0);
  CHECK(result.unexpected == 0);
  CHECK(result.resurrected == 0);
  CHECK(result.unreadable == 0);
  CHECK(result.maxSiblings == 2);
  CHECK(result.anomalies.empty());
  CHECK(result.safe());
  CHECK(result.convergedWithoutReads);
  CHECK(result.convergeSeconds == 1.5);
  CHECK(result.convergedAfterReads);
  CHECK(result.convergeAfterReadsSeconds == 0.25);
  CHECK(result.tombstonesCollected);
  CHECK(result.tombstoneSeconds == 12.5);
  CHECK(result.tombstonesLeft == 0);
  CHECK(verdictFor(result, "") == "pass");
}

TEST_CASE("checker: an acknowledged add missing from the final set is lost") {
  std::vector<Operation> history = {op(OpKind::ADD, "set-1", "a", Outcome::OK, 0),
                                    op(OpKind::ADD, "set-1", "b", Outcome::OK, 1000),
                                    op(OpKind::ADD, "set-1", "c", Outcome::OK, 12345)};
  CheckResult result = check(history, converged({key("", "set-1", {"a  b", "b"})}));
  CHECK(result.lost == 1);
  CHECK_FALSE(result.safe());
  REQUIRE(result.anomalies.size() == 1);
  const Anomaly& lost = result.anomalies[0];
  CHECK(lost.kind == "lost");
  CHECK(lost.key == "set-1");
  CHECK(lost.value == "c");
  CHECK(lost.detail ==
        "acknowledged by client 1 thread 2 at +12.345 s, absent from the final read (2 siblings)");
}

TEST_CASE("checker: a missing add whose outcome is unknown is not lost") {
  std::vector<Operation> history = {op(OpKind::ADD, "set-1", "a", Outcome::OK),
                                    op(OpKind::ADD, "set-1", "b", Outcome::UNKNOWN),
                                    op(OpKind::ADD, "set-1", "c", Outcome::UNKNOWN)};
  // b may have been applied (it is there, and not unexpected); c may not have been.
  CheckResult result = check(history, converged({key("", "set-1", {"a b"})}));
  CHECK(result.lost == 0);
  CHECK(result.unexpected == 0);
  CHECK(result.safe());
}

TEST_CASE("checker: an element nobody wrote is unexpected, and so is one only a failed add wrote") {
  std::vector<Operation> history = {op(OpKind::ADD, "set-1", "a", Outcome::OK),
                                    op(OpKind::ADD, "set-1", "y", Outcome::FAIL)};
  KeyState state = key("", "set-1", {"a x"});
  state.replicas[2].values = {"a y"};  // only one replica, and not the read, holds y
  CheckResult result = check(history, converged({state}));
  CHECK(result.lost == 0);
  CHECK(result.unexpected == 2);
  CHECK(hasAnomaly(result, "unexpected", "set-1", "x"));
  CHECK(hasAnomaly(result, "unexpected", "set-1", "y"));
  CHECK_FALSE(result.safe());
}

TEST_CASE("checker: a deleted value live again on one replica is resurrected") {
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 100, 10, {"v1"}),
  };
  KeyState state = key("", "del-1", {});
  state.siblings = 1;  // the tombstone
  state.replicas[1].values = {"v1"};
  state.replicas[2].values = {"v1"};
  CheckResult result = check(history, converged({state}));
  CHECK(result.resurrected == 1);
  CHECK(result.lost == 0);
  CHECK(result.unexpected == 0);
  REQUIRE(result.anomalies.size() == 1);
  CHECK(result.anomalies[0].kind == "resurrected");
  CHECK(result.anomalies[0].value == "v1");
}

TEST_CASE("checker: a value the delete's read did not observe is a legitimate sibling") {
  // v2 was written concurrently with the delete, which saw only v1: v2 survives it.
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::PUT, "del-1", "v2", Outcome::OK, 95),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 100, 10, {"v1"}),
  };
  KeyState state = key("", "del-1", {"v2"});
  state.siblings = 2;
  CheckResult result = check(history, converged({state}));
  CHECK(result.resurrected == 0);
  CHECK(result.lost == 0);
  CHECK(result.safe());
}

TEST_CASE("checker: a value an unknown delete observed may be gone but must not come back") {
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-1", "", Outcome::UNKNOWN, 100, 10, {"v1"}),
      op(OpKind::PUT, "del-2", "w1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-2", "", Outcome::UNKNOWN, 100, 10, {"w1"}),
      op(OpKind::PUT, "del-3", "z1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-3", "", Outcome::FAIL, 100, 10, {"z1"}),
  };
  CheckResult result = check(
      history, converged({key("", "del-1", {}), key("", "del-2", {"w1"}), key("", "del-3", {})}));
  CHECK(result.resurrected == 0);
  CHECK(result.lost == 1);  // z1: a failed delete removed nothing
  CHECK(hasAnomaly(result, "lost", "del-3", "z1"));
}

TEST_CASE("checker: a value whose put was indeterminate may come back after a delete") {
  // The put timed out; a copy of it (held by a partitioned node) lands after the delete that
  // saw another copy. The write took effect late, concurrently with the delete.
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::UNKNOWN, 0, 2000),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 2500, 10, {"v1"}),
  };
  CheckResult result = check(history, converged({key("", "del-1", {"v1"})}));
  CHECK(result.resurrected == 0);
  CHECK(result.safe());
}

TEST_CASE("checker: a put with the context of a read supersedes what that read observed") {
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::PUT, "del-1", "v2", Outcome::OK, 100, 10, {"v1"}),
  };
  CHECK(check(history, converged({key("", "del-1", {"v2"})})).safe());
  CheckResult back = check(history, converged({key("", "del-1", {"v1", "v2"})}));
  CHECK(back.resurrected == 1);
  CHECK(hasAnomaly(back, "resurrected", "del-1", "v1"));
}

TEST_CASE("checker: a deleted key whose tombstones were collected is absent, not lost") {
  // After collection no replica holds the key at all, and the R = N read finds nothing.
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 100, 10, {"v1"}),
      op(OpKind::PUT, "del-2", "w1", Outcome::OK, 0),
      op(OpKind::PUT, "del-2", "w2", Outcome::OK, 100, 10, {"w1"}),
      op(OpKind::DELETE, "del-2", "", Outcome::UNKNOWN, 200, 10, {"w2"}),
  };
  CheckResult result = check(history, converged({gone("del-1"), gone("del-2")}));
  CHECK(result.lost == 0);
  CHECK(result.resurrected == 0);
  CHECK(result.unreadable == 0);
  CHECK(result.tombstonesLeft == 0);
  CHECK(result.anomalies.empty());
  CHECK(verdictFor(result, "") == "pass");

  // Gone while no delete superseded it: the put is lost, collected or not.
  CheckResult lost =
      check({op(OpKind::PUT, "del-3", "z1", Outcome::OK)}, converged({gone("del-3")}));
  CHECK(lost.lost == 1);
  CHECK(hasAnomaly(lost, "lost", "del-3", "z1"));
}

TEST_CASE("checker: a replica copy of only tombstones left at the end is reported, once per copy") {
  std::vector<Operation> history = {
      op(OpKind::PUT, "del-1", "v1", Outcome::OK, 0),
      op(OpKind::DELETE, "del-1", "", Outcome::OK, 100, 10, {"v1"}),
      op(OpKind::PUT, "del-2", "w1", Outcome::OK, 0),
      op(OpKind::PUT, "del-2", "w2", Outcome::OK, 95),
      op(OpKind::DELETE, "del-2", "", Outcome::OK, 100, 10, {"w1"}),
  };
  KeyState left = gone("del-1");
  left.replicas[0].found = true;
  left.replicas[0].tombstones = 1;
  left.replicas[2].found = true;
  left.replicas[2].tombstones = 2;
  // A tombstone beside a concurrent live value is not collectable: not reported.
  KeyState sibling = key("", "del-2", {"w2"});
  sibling.siblings = 2;
  for (ReplicaCopy& copy : sibling.replicas) copy.tombstones = 1;
  // An unreachable replica says nothing either way.
  KeyState unknown = gone("del-3");
  unknown.replicas[1].reachable = false;
  unknown.replicas[1].found = true;
  unknown.replicas[1].tombstones = 1;

  FinalState final = converged({left, sibling, unknown});
  final.tombstones = TombstoneCollection{false, std::nullopt, 2};
  CheckResult result = check(history, final);
  CHECK(result.safe());  // nothing lost or undone: the tombstones are a liveness failure
  CHECK_FALSE(result.tombstonesCollected);
  CHECK_FALSE(result.tombstoneSeconds.has_value());
  CHECK(result.tombstonesLeft == 2);
  REQUIRE(result.anomalies.size() == 2);
  CHECK(result.anomalies[0].kind == "tombstone");
  CHECK(result.anomalies[0].key == "del-1");
  CHECK(result.anomalies[0].detail ==
        "a copy of only 1 tombstone(s) left on 127.0.0.1:7001 when the wait for collection ended");
  CHECK(result.anomalies[1].detail.find("2 tombstone(s) left on 127.0.0.1:7003") !=
        std::string::npos);
  CHECK(verdictFor(result, "") == "FAIL");
}

TEST_CASE("checker: a blind write missing from the final read is lost") {
  std::vector<Operation> history = {op(OpKind::BLIND, "blind-1", "b1", Outcome::OK, 0),
                                    op(OpKind::BLIND, "blind-1", "b2", Outcome::OK, 5),
                                    op(OpKind::BLIND, "blind-1", "b3", Outcome::FAIL, 6)};
  CheckResult result = check(history, converged({key("", "blind-1", {"b1", "b3", "b4"})}));
  CHECK(result.lost == 1);
  CHECK(hasAnomaly(result, "lost", "blind-1", "b2"));
  CHECK(result.unexpected == 2);
  CHECK(hasAnomaly(result, "unexpected", "blind-1", "b3"));
  CHECK(hasAnomaly(result, "unexpected", "blind-1", "b4"));
}

TEST_CASE("checker: an older value winning over a later acknowledged LWW write is stale") {
  std::vector<Operation> history = {op(OpKind::LWW, "lww-1", "a", Outcome::OK, 0, 100),
                                    op(OpKind::LWW, "lww-1", "b", Outcome::OK, 200, 100),
                                    op(OpKind::LWW, "lww-1", "c", Outcome::OK, 400, 100)};
  CheckResult result = check(history, converged({key("lww", "lww-1", {"a"})}));
  CHECK(result.lost == 1);
  REQUIRE(result.anomalies.size() == 1);
  CHECK(result.anomalies[0].kind == "stale-lww");
  CHECK(result.anomalies[0].key == "lww/lww-1");
  CHECK(result.anomalies[0].value == "c");
  CHECK_FALSE(result.safe());
}

TEST_CASE("checker: an LWW write concurrent with the winner, or after an unknown one, is fine") {
  // b began before a's write returned, so either may carry the later timestamp; d is
  // acknowledged after c began, but c never returned (unknown) so it may have been later.
  std::vector<Operation> history = {op(OpKind::LWW, "lww-1", "a", Outcome::OK, 0, 100),
                                    op(OpKind::LWW, "lww-1", "b", Outcome::OK, 50, 100),
                                    op(OpKind::LWW, "lww-2", "c", Outcome::UNKNOWN, 0, 5000),
                                    op(OpKind::LWW, "lww-2", "d", Outcome::OK, 200, 100)};
  CheckResult result =
      check(history, converged({key("lww", "lww-1", {"a"}), key("lww", "lww-2", {"c"})}));
  CHECK(result.safe());
  CHECK(result.anomalies.empty());
}

TEST_CASE("checker: an unreadable key counts its acknowledged writes lost") {
  std::vector<Operation> history = {
      op(OpKind::ADD, "set-1", "a", Outcome::OK),
      op(OpKind::ADD, "set-1", "b", Outcome::OK),
      op(OpKind::ADD, "set-1", "c", Outcome::UNKNOWN),
      op(OpKind::LWW, "lww-1", "x", Outcome::OK, 0),
      op(OpKind::LWW, "lww-1", "y", Outcome::OK, 100),
      op(OpKind::BLIND, "blind-9", "never-read", Outcome::OK),
  };
  CheckResult result =
      check(history, converged({unreadable("", "set-1"), unreadable("lww", "lww-1")}));
  CHECK(result.unreadable == 3);
  CHECK(result.lost == 4);  // a, b; one for the register; the key never read at all
  CHECK(hasAnomaly(result, "lost", "set-1", "a"));
  CHECK(hasAnomaly(result, "lost", "set-1", "b"));
  CHECK(hasAnomaly(result, "lost", "lww/lww-1", "y"));
  CHECK(hasAnomaly(result, "lost", "blind-9", "never-read"));
}

TEST_CASE("checker: maxSiblings is the most siblings any successful final read returned") {
  KeyState other = key("", "other-1", {"1", "2", "3", "4"});
  KeyState failed = unreadable("", "set-2");
  failed.siblings = 7;
  CheckResult result = check({}, converged({key("", "other-2", {"a"}), other, failed}));
  CHECK(result.maxSiblings == 4);
  CHECK(result.unreadable == 1);
  CHECK(result.safe());  // keys of no family are not judged
}

TEST_CASE("checker: anomalies stop at 1000 but the counts are exact") {
  std::vector<Operation> history;
  for (int i = 0; i < 1500; ++i) {
    history.push_back(op(OpKind::BLIND, "blind-1", "v" + std::to_string(i), Outcome::OK, i));
  }
  CheckResult result = check(history, converged({key("", "blind-1", {})}));
  CHECK(result.lost == 1500);
  CHECK(result.anomalies.size() == 1000);
}

// A scratch directory, removed with everything in it at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "checker-test-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

void writeFile(const fs::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  REQUIRE(out.good());
}

void requireSame(const Operation& a, const Operation& b) {
  CHECK(a.client == b.client);
  CHECK(a.thread == b.thread);
  CHECK(a.kind == b.kind);
  CHECK(a.key == b.key);
  CHECK(a.value == b.value);
  CHECK(a.observed == b.observed);
  CHECK(a.invokeMicros == b.invokeMicros);
  CHECK(a.completeMicros == b.completeMicros);
  CHECK(a.outcome == b.outcome);
  CHECK(a.error == b.error);
}

TEST_CASE("history: records read back as written, and a truncated last line is dropped") {
  TempDir dir;
  fs::create_directory(dir.path / "history");
  Operation first = op(OpKind::DELETE, "del-1", "", Outcome::UNKNOWN, 5, 20, {"v1", "v 2"});
  first.error = "DISCONNECTED: \"peer\" hung up\n\tat n2";
  Operation second = op(OpKind::ADD, "set-1", "e", Outcome::OK);
  second.client = 2;
  Operation third = op(OpKind::LWW, "lww-1", "r", Outcome::FAIL);
  third.client = 2;
  third.thread = 7;
  writeFile(dir.path / "history" / "client-1.jsonl", toJsonLine(first) + "\n");
  // Client 2 was killed while writing its third line.
  writeFile(dir.path / "history" / "client-2.jsonl",
            toJsonLine(second) + "\n" + toJsonLine(third) + "\n{\"client\":2,\"thr");
  writeFile(dir.path / "history" / "notes.txt", "not a history file\n");

  FaultWindow kill{"kill -9 n2 <&>", T0 + 1000, T0 + 5000};
  FaultWindow partition{"partition n1,n2 | n3", T0 + 6000, T0 + 9000};
  writeFile(dir.path / "faults.jsonl", toJsonLine(kill) + "\n" + toJsonLine(partition) + "\n");

  FinalState state = converged({key("", "set-1", {"e"}), unreadable("lww", "lww-1")});
  state.keys[0].replicas[1].reachable = false;
  state.keys[0].replicas[2].tombstones = 3;
  state.tombstones = TombstoneCollection{false, std::nullopt, 7};
  state.afterReads = Convergence{false, std::nullopt, 4};
  writeFile(dir.path / "final.json", toJson(state));

  std::vector<Operation> history = readHistory(dir.path.string());
  REQUIRE(history.size() == 3);
  requireSame(history[0], first);
  requireSame(history[1], second);
  requireSame(history[2], third);

  std::vector<FaultWindow> faults = readFaults(dir.path.string());
  REQUIRE(faults.size() == 2);
  CHECK(faults[0].name == kill.name);
  CHECK(faults[0].startMicros == kill.startMicros);
  CHECK(faults[0].endMicros == kill.endMicros);
  CHECK(faults[1].name == partition.name);

  FinalState read = readFinalState(dir.path.string());
  REQUIRE(read.keys.size() == 2);
  for (size_t k = 0; k < read.keys.size(); ++k) {
    const KeyState& a = read.keys[k];
    const KeyState& b = state.keys[k];
    CHECK(a.ns == b.ns);
    CHECK(a.key == b.key);
    CHECK(a.readOk == b.readOk);
    CHECK(a.readError == b.readError);
    CHECK(a.values == b.values);
    CHECK(a.siblings == b.siblings);
    REQUIRE(a.replicas.size() == b.replicas.size());
    for (size_t r = 0; r < a.replicas.size(); ++r) {
      CHECK(a.replicas[r].node == b.replicas[r].node);
      CHECK(a.replicas[r].reachable == b.replicas[r].reachable);
      CHECK(a.replicas[r].found == b.replicas[r].found);
      CHECK(a.replicas[r].values == b.replicas[r].values);
      CHECK(a.replicas[r].tombstones == b.replicas[r].tombstones);
      CHECK(a.replicas[r].digest == b.replicas[r].digest);
    }
  }
  CHECK(read.withoutReads.converged);
  CHECK(read.withoutReads.seconds == 1.5);
  CHECK(read.withoutReads.divergentKeys == 0);
  CHECK_FALSE(read.tombstones.collected);
  CHECK_FALSE(read.tombstones.seconds.has_value());
  CHECK(read.tombstones.copiesLeft == 7);
  CHECK_FALSE(read.afterReads.converged);
  CHECK_FALSE(read.afterReads.seconds.has_value());
  CHECK(read.afterReads.divergentKeys == 4);
}

TEST_CASE("history: a malformed line before the last one is an error naming file and line") {
  TempDir dir;
  fs::create_directory(dir.path / "history");
  Operation one = op(OpKind::ADD, "set-1", "e", Outcome::OK);
  writeFile(dir.path / "history" / "client-3.jsonl",
            toJsonLine(one) + "\n{\"client\":3,\"kind\":\"add\"}\n" + toJsonLine(one) + "\n");
  CHECK_THROWS_WITH(readHistory(dir.path.string()),
                    Catch::Contains("client-3.jsonl:2: malformed line"));
  writeFile(dir.path / "history" / "client-3.jsonl",
            toJsonLine(one) + "\n" + toJsonLine(one) + "\n");
  CHECK(readHistory(dir.path.string()).size() == 2);
}

TEST_CASE("history: no faults file means no faults, no final state is an error") {
  TempDir dir;
  CHECK(readFaults(dir.path.string()).empty());
  CHECK_THROWS_WITH(readFinalState(dir.path.string()), Catch::Contains("final.json"));
  CHECK_THROWS_WITH(readHistory(dir.path.string()), Catch::Contains("history"));
}

TEST_CASE("report: verdicts") {
  CheckResult good;
  good.convergedWithoutReads = true;
  good.convergedAfterReads = true;
  good.tombstonesCollected = true;
  CheckResult lossy = good;
  lossy.lost = 1;
  CheckResult diverged = good;
  diverged.convergedWithoutReads = false;
  CheckResult uncollected = good;
  uncollected.tombstonesCollected = false;
  CheckResult leftOver = good;
  leftOver.tombstonesLeft = 1;
  CHECK(verdictFor(good, "") == "pass");
  CHECK(verdictFor(lossy, "") == "FAIL");
  CHECK(verdictFor(diverged, "") == "FAIL");
  CHECK(verdictFor(uncollected, "") == "FAIL");
  CHECK(verdictFor(leftOver, "") == "FAIL");
  CHECK(verdictFor(diverged, "no anti-entropy yet (#10)") == "xfail");
  CHECK(verdictFor(good, "no anti-entropy yet (#10)") == "XPASS");
}

TEST_CASE("report: the JSON array parses back, with null for never converging") {
  RunSummary run;
  run.scenario = "partition-heal";
  run.runDir = "/tmp/runs/partition-heal";
  run.result.ops = 120;
  run.result.acknowledged = 100;
  run.result.lost = 2;
  run.result.maxSiblings = 3;
  run.result.convergedAfterReads = true;
  run.result.convergeAfterReadsSeconds = 0.5;
  run.result.tombstonesLeft = 3;
  run.expectation = "no anti-entropy yet (#10)";
  run.verdict = verdictFor(run.result, run.expectation);

  nlohmann::json runs = nlohmann::json::parse(toJsonArray({run}));
  REQUIRE(runs.is_array());
  REQUIRE(runs.size() == 1);
  const nlohmann::json& r = runs[0];
  CHECK(r.at("scenario") == "partition-heal");
  CHECK(r.at("run_dir") == "/tmp/runs/partition-heal");
  CHECK(r.at("ops") == 120);
  CHECK(r.at("acknowledged") == 100);
  CHECK(r.at("lost") == 2);
  CHECK(r.at("max_siblings") == 3);
  CHECK(r.at("converged_without_reads") == false);
  CHECK(r.at("converge_s").is_null());
  CHECK(r.at("converged_after_reads") == true);
  CHECK(r.at("converge_after_reads_s") == 0.5);
  CHECK(r.at("tombstones_collected") == false);
  CHECK(r.at("tombstones_s").is_null());
  CHECK(r.at("tombstones_left") == 3);
  CHECK(r.at("verdict") == "xfail");
  CHECK(r.at("expectation") == "no anti-entropy yet (#10)");
  for (const char* field : {"failed", "unknown", "unexpected", "resurrected", "unreadable"}) {
    CHECK(r.at(field) == 0);
  }

  std::string text = table({run});
  CHECK(text.find("partition-heal") != std::string::npos);
  CHECK(text.find("xfail (no anti-entropy yet (#10))") != std::string::npos);
  CHECK(text.find("y 0.5s") != std::string::npos);
  CHECK(text.find("n 3 left") != std::string::npos);
  run.result.tombstonesLeft = 0;
  run.result.tombstonesCollected = true;
  run.result.tombstoneSeconds = 21.34;
  CHECK(table({run}).find("y 21.3s") != std::string::npos);
  CHECK(markdownTable({run}).find("| partition-heal | 120 | 100 | 2 |") != std::string::npos);
}

TEST_CASE("report: the timeline is an SVG document with the faults named and escaped") {
  TempDir dir;
  std::vector<Operation> history = {op(OpKind::ADD, "set-1", "a", Outcome::OK, 0, 2),
                                    op(OpKind::ADD, "set-1", "b", Outcome::UNKNOWN, 1500, 900)};
  std::vector<FaultWindow> faults = {{"partition n1 | n2 & <c1>", T0 + 1'000'000, 0}};
  fs::path svg = dir.path / "timeline.svg";
  writeTimelineSvg(svg.string(), "a \"quoted\" run", history, faults);
  std::ifstream in(svg);
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(content.rfind("<?xml", 0) == 0);
  CHECK(content.find("xmlns=\"http://www.w3.org/2000/svg\"") != std::string::npos);
  CHECK(content.find("partition n1 | n2 &amp; &lt;c1&gt;") != std::string::npos);
  CHECK(content.find("a &quot;quoted&quot; run") != std::string::npos);
  CHECK(content.find("</svg>") != std::string::npos);
}

}  // namespace
}  // namespace dynkv::faults
