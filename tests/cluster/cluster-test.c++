// dynkv end to end: the blocking Client against real storaged processes on loopback, each
// test on a 3-node cluster of its own (tests/cluster/cluster-fixture.h). What a user of the store
// relies on: an acknowledged write is readable, a concurrent write is never lost, a node
// killed with SIGKILL keeps what it acknowledged and catches up when it comes back, and a
// failure is reported with the replicas that caused it.

#include <algorithm>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <set>
#include <string>
#include <vector>

#include <dynkv/client.h>

#include "cluster-fixture.h"

namespace dynkv {
namespace {

using test::ClusterFixture;

template <typename Func>
Error errorFrom(Func&& func) {
  // The dynkv::Error that `func` throws; fails the test if it returns normally.
  try {
    func();
  } catch (const Error& e) {
    return e;
  }
  FAIL("expected a dynkv::Error, but the call succeeded");
  throw std::logic_error("unreachable");
}

std::vector<std::string> sorted(std::vector<std::string> values) {
  std::sort(values.begin(), values.end());
  return values;
}

std::set<std::string> failedNodes(const Error& e) {
  std::set<std::string> nodes;
  for (auto& f : e.failedReplicas()) nodes.insert(f.node);
  return nodes;
}

CallOptions quorum(uint32_t r, uint32_t w) {
  CallOptions options;
  options.n = 3;
  options.r = r;
  options.w = w;
  return options;
}

struct Exited {
  int status = -1;     // the exit code; -1 if it was still running at the deadline (then killed)
  std::string output;  // what it wrote to stdout and stderr
};

Exited runToExit(std::vector<std::string> args, std::chrono::seconds deadline) {
  // Runs a program and waits for it to exit, reading its output until the pipe closes; a
  // program still running at `deadline` is killed, so a test can never hang on one.
  int out[2];
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_adddup2(&actions, out[1], 2);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  int spawned = posix_spawn(&child, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  REQUIRE(spawned == 0);

  Exited exited;
  auto end = std::chrono::steady_clock::now() + deadline;
  bool open = true;
  while (open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd readable{out[0], POLLIN, 0};
    if (poll(&readable, 1, int(left.count())) <= 0) continue;
    char buffer[4096];
    ssize_t n = read(out[0], buffer, sizeof(buffer));
    if (n > 0) exited.output.append(buffer, size_t(n));
    open = n > 0;
  }
  close(out[0]);
  if (open) ::kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  if (!open && WIFEXITED(status)) exited.status = WEXITSTATUS(status);
  return exited;
}

std::string keyNumber(const std::string& prefix, int i) { return prefix + std::to_string(i); }
std::string valueNumber(const std::string& prefix, int i) {
  return prefix + "-value-" + std::to_string(i);
}

TEST_CASE("a written value reads back, binary and empty values included", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  auto q = quorum(2, 2);

  client.put("greeting", "hello, dynamo", {}, q);
  auto got = client.get("greeting", q);
  REQUIRE(got.found());
  REQUIRE(got.siblings.size() == 1);
  CHECK(got.values() == std::vector<std::string>{"hello, dynamo"});
  CHECK_FALSE(got.siblings[0].deleted);
  CHECK(got.siblings[0].timestampMicros > 0);
  CHECK_FALSE(got.context.empty());

  std::string binary("\0a\0\xff\x01\0", 6);
  client.put("binary", binary, {}, q);
  auto gotBinary = client.get("binary", q);
  REQUIRE(gotBinary.values().size() == 1);
  CHECK(gotBinary.values()[0] == binary);
  CHECK(gotBinary.values()[0].size() == 6);

  std::string binaryKey("k\0ey", 4);
  client.put(binaryKey, "under a binary key", {}, q);
  CHECK(client.get(binaryKey, q).values() == std::vector<std::string>{"under a binary key"});
  CHECK_FALSE(client.get("k", q).found());

  client.put("empty", "", {}, q);
  auto gotEmpty = client.get("empty", q);
  CHECK(gotEmpty.found());  // an empty value is a value, not a deletion
  CHECK(gotEmpty.values() == std::vector<std::string>{""});

  auto missing = client.get("never-written", q);
  CHECK_FALSE(missing.found());
  CHECK(missing.siblings.empty());
}

TEST_CASE("concurrent writes become siblings and a write with the merged context resolves them",
          "[cluster]") {
  ClusterFixture cluster;
  Client alice(cluster.clientOptions()), bob(cluster.clientOptions());

  alice.put("cart", "milk");
  auto readA = alice.get("cart");
  auto readB = bob.get("cart");
  REQUIRE(readA.values() == std::vector<std::string>{"milk"});
  REQUIRE(readB.values() == std::vector<std::string>{"milk"});

  // Both saw "milk" and both write over it: neither write may be lost.
  alice.put("cart", "milk,book", readA.context);
  bob.put("cart", "milk,pen", readB.context);
  auto conflicted = alice.get("cart");
  REQUIRE(conflicted.siblings.size() == 2);
  CHECK(sorted(conflicted.values()) == std::vector<std::string>{"milk,book", "milk,pen"});
  CHECK(sorted(bob.get("cart").values()) == std::vector<std::string>{"milk,book", "milk,pen"});

  // The application merges and writes back with the read's context: one version remains.
  alice.put("cart", "milk,book,pen", conflicted.context);
  auto resolved = bob.get("cart");
  REQUIRE(resolved.siblings.size() == 1);
  CHECK(resolved.values() == std::vector<std::string>{"milk,book,pen"});
  auto viaRepeat = alice.get("cart", quorum(3, 2));
  CHECK(viaRepeat.values() == std::vector<std::string>{"milk,book,pen"});

  SECTION("a blind write never destroys an existing version") {
    bob.put("cart", "blind");
    auto afterBlind = alice.get("cart");
    REQUIRE(afterBlind.siblings.size() == 2);
    CHECK(sorted(afterBlind.values()) == std::vector<std::string>{"blind", "milk,book,pen"});
  }

  SECTION("a write with a stale context keeps the newer version as a sibling") {
    bob.put("cart", "milk,stale", readB.context);
    auto afterStale = alice.get("cart");
    CHECK(sorted(afterStale.values()) == std::vector<std::string>{"milk,book,pen", "milk,stale"});
  }
}

TEST_CASE("a blind write to an existing key becomes a sibling", "[cluster]") {
  ClusterFixture cluster;
  Client one(cluster.clientOptions()), two(cluster.clientOptions());
  one.put("k", "first");
  two.put("k", "second");  // no context: it has seen nothing
  auto got = one.get("k");
  REQUIRE(got.siblings.size() == 2);
  CHECK(sorted(got.values()) == std::vector<std::string>{"first", "second"});
  // Even the same client's second blind write keeps the first.
  one.put("k", "third");
  CHECK(sorted(two.get("k").values()) == std::vector<std::string>{"first", "second", "third"});
}

TEST_CASE("a delete with the read's context removes the key", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  client.put("doomed", "v1");
  auto read = client.get("doomed");
  REQUIRE(read.found());

  client.remove("doomed", read.context);
  auto afterDelete = client.get("doomed");
  CHECK_FALSE(afterDelete.found());
  CHECK(afterDelete.values().empty());
  CHECK_FALSE(client.get("doomed", quorum(3, 2)).found());

  // The key can be written again afterwards, superseding the deletion.
  client.put("doomed", "reborn", afterDelete.context);
  auto reborn = client.get("doomed");
  CHECK(reborn.values() == std::vector<std::string>{"reborn"});
  CHECK(reborn.siblings.size() == 1);
}

TEST_CASE("a delete concurrent with a write leaves the written value as a sibling", "[cluster]") {
  ClusterFixture cluster;
  Client deleter(cluster.clientOptions()), writer(cluster.clientOptions());
  deleter.put("contested", "original");
  auto readD = deleter.get("contested");
  auto readW = writer.get("contested");

  deleter.remove("contested", readD.context);
  writer.put("contested", "updated", readW.context);

  auto got = deleter.get("contested");
  CHECK(got.found());
  CHECK(got.values() == std::vector<std::string>{"updated"});
  REQUIRE(got.siblings.size() == 2);
  CHECK(std::count_if(got.siblings.begin(), got.siblings.end(),
                      [](const Version& v) { return v.deleted; }) == 1);
  CHECK(resolve(got, [](auto&) { return std::string("resolver called"); }) == "resolver called");
}

TEST_CASE("a node killed with SIGKILL keeps its data, and the others keep serving", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  const int KEYS = 50;

  // W=3: every replica, the one we are about to kill included, acknowledged these.
  for (int i = 0; i < KEYS; i++) {
    client.put(keyNumber("before:", i), valueNumber("before", i), {}, quorum(2, 3));
  }

  cluster.killHard(1);
  REQUIRE_FALSE(cluster.cluster().running(1));

  // Two replicas of three are enough for W=2 and R=2.
  for (int i = 0; i < KEYS; i++) {
    client.put(keyNumber("during:", i), valueNumber("during", i), {}, quorum(2, 2));
  }
  for (int i = 0; i < KEYS; i++) {
    INFO("key " << i);
    CHECK(client.get(keyNumber("before:", i), quorum(2, 2)).values() ==
          std::vector<std::string>{valueNumber("before", i)});
    CHECK(client.get(keyNumber("during:", i), quorum(2, 2)).values() ==
          std::vector<std::string>{valueNumber("during", i)});
  }

  cluster.restart(1);

  // Only the restarted node can answer now, so this reads what it kept on disk through the
  // kill (before any read repair could have touched it).
  cluster.killHard(0);
  cluster.killHard(2);
  for (int i = 0; i < KEYS; i++) {
    INFO("key " << i << " on the restarted node alone");
    CHECK(client.get(keyNumber("before:", i), quorum(1, 1)).values() ==
          std::vector<std::string>{valueNumber("before", i)});
  }

  // With everyone back, an R=3 read (all replicas answer) sees every key once.
  cluster.restart(0);
  cluster.restart(2);
  for (int i = 0; i < KEYS; i++) {
    INFO("key " << i << " with R=3");
    auto before = client.get(keyNumber("before:", i), quorum(3, 2));
    CHECK(before.values() == std::vector<std::string>{valueNumber("before", i)});
    CHECK(before.siblings.size() == 1);
    auto during = client.get(keyNumber("during:", i), quorum(3, 2));
    CHECK(during.values() == std::vector<std::string>{valueNumber("during", i)});
    CHECK(during.siblings.size() == 1);
  }
}

TEST_CASE("every acknowledged write survives a restart of the whole cluster", "[cluster]") {
  ClusterFixture cluster;
  const int KEYS = 50;
  {
    Client client(cluster.clientOptions());
    for (int i = 0; i < KEYS; i++) client.put(keyNumber("durable:", i), valueNumber("d", i));
  }

  cluster.down();
  for (size_t node = 0; node < 3; node++) REQUIRE_FALSE(cluster.cluster().running(node));
  cluster.up();

  Client client(cluster.clientOptions());
  for (int i = 0; i < KEYS; i++) {
    INFO("key " << i);
    CHECK(client.get(keyNumber("durable:", i)).values() ==
          std::vector<std::string>{valueNumber("d", i)});
  }
}

TEST_CASE("a client keeps working across a restart of the whole cluster", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  client.put("survivor", "before");
  cluster.down();
  cluster.up();
  auto got = client.get("survivor");
  CHECK(got.values() == std::vector<std::string>{"before"});
  client.put("survivor", "after", got.context);
  CHECK(client.get("survivor").values() == std::vector<std::string>{"after"});
}

TEST_CASE("an oversized key or value is rejected, naming the limit, and nothing is stored",
          "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());

  SECTION("key") {
    std::string longKey(1025, 'k');
    auto put = errorFrom([&]() { client.put(longKey, "v"); });
    CHECK(put.kind() == ErrorKind::INVALID_ARGUMENT);
    CHECK_THAT(put.what(), Catch::Contains("limit"));
    CHECK_THAT(put.what(), Catch::Contains("1024"));
    auto get = errorFrom([&]() { client.get(longKey); });
    CHECK(get.kind() == ErrorKind::INVALID_ARGUMENT);
    auto del = errorFrom([&]() { client.remove(longKey, {}); });
    CHECK(del.kind() == ErrorKind::INVALID_ARGUMENT);

    // The limit itself is fine.
    std::string longestKey(1024, 'k');
    client.put(longestKey, "at the limit");
    CHECK(client.get(longestKey).values() == std::vector<std::string>{"at the limit"});
  }

  SECTION("value") {
    std::string bigValue(1024 * 1024 + 1, 'v');
    auto put = errorFrom([&]() { client.put("big", bigValue); });
    CHECK(put.kind() == ErrorKind::INVALID_ARGUMENT);
    CHECK_THAT(put.what(), Catch::Contains("limit"));
    CHECK_FALSE(client.get("big", quorum(3, 2)).found());

    // The limit itself is fine.
    std::string largest(1024 * 1024, 'v');
    client.put("largest", largest);
    auto got = client.get("largest");
    REQUIRE(got.values().size() == 1);
    CHECK(got.values()[0] == largest);
  }
}

TEST_CASE("a node enforces its configured value limit even on a client that has not learned it",
          "[cluster]") {
  ClusterFixture cluster(3, {"--max-value-bytes", "1000"});
  std::string tooBig(1001, 'v');

  // A fresh client still assumes the default limit (1 MiB) for its first call.
  Client fresh(cluster.clientOptions());
  auto first = errorFrom([&]() { fresh.put("k", tooBig); });
  CHECK(first.kind() == ErrorKind::INVALID_ARGUMENT);
  CHECK_THAT(first.what(), Catch::Contains("limit"));

  // Once it has talked to the cluster it knows, and refuses up front.
  auto second = errorFrom([&]() { fresh.put("k", tooBig); });
  CHECK(second.kind() == ErrorKind::INVALID_ARGUMENT);
  CHECK_THAT(second.what(), Catch::Contains("limit"));

  CHECK_FALSE(fresh.get("k", quorum(3, 2)).found());
  fresh.put("k", std::string(1000, 'v'));
  CHECK(fresh.get("k").values().at(0).size() == 1000);
}

TEST_CASE("a cluster that cannot be reached fails with UNAVAILABLE naming the address",
          "[cluster]") {
  auto closed = test::closedAddress();
  ClientOptions options;
  options.seeds = {closed};
  options.timeout = std::chrono::milliseconds(1000);
  Client client(options);

  auto get = errorFrom([&]() { client.get("k"); });
  CHECK(get.kind() == ErrorKind::UNAVAILABLE);
  bool named = std::string(get.what()).find(closed) != std::string::npos ||
               failedNodes(get).count(closed) == 1;
  INFO(get.what());
  CHECK(named);

  auto put = errorFrom([&]() { client.put("k", "v"); });
  CHECK(put.kind() == ErrorKind::UNAVAILABLE);
  CHECK_THAT(put.what(), Catch::Contains(closed));
}

TEST_CASE("a write that cannot reach W replicas fails, naming the dead ones", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  client.put("k", "before");  // the client has the view and live connections

  cluster.killHard(0);
  cluster.killHard(2);

  auto put = errorFrom([&]() { client.put("k", "after", {}, quorum(2, 2)); });
  INFO(put.what());
  CHECK((put.kind() == ErrorKind::UNAVAILABLE || put.kind() == ErrorKind::TIMEOUT));
  CHECK(put.acks() < 2);
  CHECK(put.required() == 2);
  auto failed = failedNodes(put);
  CHECK(failed.count(cluster.address(0)) == 1);
  CHECK(failed.count(cluster.address(2)) == 1);
  CHECK(failed.count(cluster.address(1)) == 0);

  auto get = errorFrom([&]() { client.get("k", quorum(2, 2)); });
  INFO(get.what());
  CHECK((get.kind() == ErrorKind::UNAVAILABLE || get.kind() == ErrorKind::TIMEOUT));
  CHECK(get.acks() < 2);
  CHECK(failedNodes(get).count(cluster.address(0)) == 1);
  CHECK(failedNodes(get).count(cluster.address(2)) == 1);
}

TEST_CASE("per-call quorum overrides", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());

  SECTION("W=3 and R=3 succeed with every node up") {
    client.put("all", "three", {}, quorum(3, 3));
    CHECK(client.get("all", quorum(3, 3)).values() == std::vector<std::string>{"three"});
  }

  SECTION("R=1 and W=1 work with two of three nodes down") {
    client.put("lonely", "v1");
    cluster.killHard(0);
    cluster.killHard(1);
    auto got = client.get("lonely", quorum(1, 1));
    CHECK(got.values() == std::vector<std::string>{"v1"});
    client.put("lonely", "v2", got.context, quorum(1, 1));
    CHECK(client.get("lonely", quorum(1, 1)).values() == std::vector<std::string>{"v2"});
    client.put("fresh", "alone", {}, quorum(1, 1));
    CHECK(client.get("fresh", quorum(1, 1)).values() == std::vector<std::string>{"alone"});
  }

  SECTION("R or W greater than N is the caller's mistake") {
    CallOptions badRead;
    badRead.n = 2;
    badRead.r = 3;
    auto get = errorFrom([&]() { client.get("k", badRead); });
    CHECK(get.kind() == ErrorKind::INVALID_ARGUMENT);

    CallOptions badWrite;
    badWrite.n = 2;
    badWrite.w = 3;
    auto put = errorFrom([&]() { client.put("k", "v", {}, badWrite); });
    CHECK(put.kind() == ErrorKind::INVALID_ARGUMENT);

    CallOptions zero;
    zero.r = 0;
    CHECK(errorFrom([&]() { client.get("k", zero); }).kind() == ErrorKind::INVALID_ARGUMENT);
    CHECK_FALSE(client.get("k").found());  // nothing was written by the rejected put
  }
}

TEST_CASE("a last-write-wins namespace keeps only the latest write", "[cluster]") {
  ClusterFixture cluster;
  auto options = cluster.clientOptions();
  options.namespaces["lww"] = NamespaceKind::LAST_WRITE_WINS;
  Client one(options), two(options);
  Key key("lww", "session");

  one.put(key, "first");
  two.put(key, "second");  // blind, from another client: still no sibling
  auto got = one.get(key);
  REQUIRE(got.siblings.size() == 1);
  CHECK(got.values() == std::vector<std::string>{"second"});

  // Concurrent writers with the same stale context: one value, the later one.
  auto stale = one.get(key);
  one.put(key, "third", stale.context);
  two.put(key, "fourth", stale.context);
  auto last = two.get(key, quorum(3, 2));
  REQUIRE(last.siblings.size() == 1);
  CHECK(last.values() == std::vector<std::string>{"fourth"});

  for (int i = 0; i < 20; i++) (i % 2 ? one : two).put(key, "round " + std::to_string(i));
  auto final = one.get(key, quorum(3, 2));
  REQUIRE(final.siblings.size() == 1);
  CHECK(final.values() == std::vector<std::string>{"round 19"});

  // The same key name in the default namespace is a different key, with its own versioning.
  CHECK_FALSE(one.get("session").found());
}

TEST_CASE("a read repairs a replica that missed a write while it was down", "[cluster]") {
  ClusterFixture cluster;
  Client client(cluster.clientOptions());
  client.put("repaired", "old", {}, quorum(2, 3));

  cluster.killHard(2);
  auto read = client.get("repaired");
  client.put("repaired", "new", read.context, quorum(2, 2));
  cluster.restart(2);

  // Every replica answers; the restarted one still has "old", which "new" supersedes.
  auto got = client.get("repaired", quorum(3, 2));
  REQUIRE(got.siblings.size() == 1);
  CHECK(got.values() == std::vector<std::string>{"new"});

  // The repair runs in the background after that read. With the two up-to-date nodes gone,
  // only the restarted node can answer: wait until it has the new value.
  cluster.killHard(0);
  cluster.killHard(1);
  std::vector<std::string> seen;
  bool repaired = test::pollUntil(std::chrono::seconds(5), [&]() {
    seen = client.get("repaired", quorum(1, 1)).values();
    return seen == std::vector<std::string>{"new"};
  });
  INFO("the restarted node alone returns " << (seen.empty() ? "nothing" : seen[0]));
  CHECK(repaired);
}

TEST_CASE("a client given one seed learns the whole ring", "[cluster]") {
  ClusterFixture cluster;
  auto options = cluster.clientOptions();
  options.seeds = {cluster.address(1)};
  Client client(options);

  auto ring = client.ring();
  REQUIRE(ring.nodes.size() == 3);
  CHECK(ring.partitions == 1024);
  std::set<std::string> addresses;
  uint32_t owned = 0;
  for (auto& n : ring.nodes) {
    addresses.insert(n.address);
    owned += n.partitions;
    CHECK(n.share > 0.2);
    CHECK(n.share < 0.5);
  }
  auto seeds = cluster.seeds();
  CHECK(addresses == std::set<std::string>(seeds.begin(), seeds.end()));
  CHECK(owned == ring.partitions);

  // And it reaches the rest: with its only seed dead, reads and writes still work.
  client.put("k", "v");
  cluster.killHard(1);
  CHECK(client.get("k").values() == std::vector<std::string>{"v"});
  client.put("k2", "v2");
  CHECK(client.get("k2").values() == std::vector<std::string>{"v2"});
}

}  // namespace
}  // namespace dynkv

namespace dynkv {
namespace {

TEST_CASE("a second storaged on a node's data directory refuses to start, naming the holder",
          "[cluster]") {
  // LMDB would let both open it; both would then write as the same node.
  ClusterFixture f(1);
  auto dataDir = f.cluster().nodeDir(0) + "/data";
  auto second = runToExit({DYNKV_STORAGED_PATH, "--data-dir", dataDir, "--listen",
                           test::closedAddress(), "--seeds", f.address(0), "--cluster",
                           f.cluster().clusterName()},
                          std::chrono::seconds(30));
  CHECK(second.status == 1);
  CHECK_THAT(second.output, Catch::Contains("storaged: data directory " + dataDir +
                                            " is in use by another storaged (pid " +
                                            std::to_string(f.cluster().pid(0)) + ")"));

  // The first goes on serving.
  CallOptions one;
  one.n = one.r = one.w = 1;
  Client client(f.clientOptions());
  client.put("k", "v", {}, one);
  CHECK(client.get("k", one).values() == std::vector<std::string>{"v"});
}

}  // namespace
}  // namespace dynkv
