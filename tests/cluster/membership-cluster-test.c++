// Membership on real storaged processes: convergence from seeds, join and leave while a
// client keeps reading and writing, restarts, a paused node, and a transfer interrupted by
// kill -9. (The pure logic is simulated in membership-test.c++.)
#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "admin.h"
#include "cluster-fixture.h"
#include "hash.h"
#include "partition-map.h"

namespace dynkv::test {
namespace {

using namespace std::chrono_literals;

class Ring {
  // A LocalCluster whose nodes are started and joined one by one, as an operator would.
 public:
  Ring(uint32_t nodes, std::vector<std::string> extraArgs = {}) {
    dir_ = makeTempDir("dynkv-membership-test");
    cluster_ = std::make_unique<LocalCluster>(testClusterOptions(dir_, nodes, std::move(extraArgs)));
  }

  ~Ring() {
    for (size_t i = 0; i < cluster_->size(); i++) {
      if (stopped_.count(i)) kill(cluster_->pid(i), SIGCONT);
    }
    cluster_->down(10s);
    if (getenv("DYNKV_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  LocalCluster& cluster() { return *cluster_; }
  AdminClient admin() { return AdminClient(cluster_->seeds(), cluster_->clusterName()); }
  std::string address(size_t i) const { return cluster_->seeds().at(i); }

  void start(size_t i) {
    cluster_->start(i);
    cluster_->waitListening(i, 20s);
  }

  void join(size_t i) {
    // The node is known to the others once it has gossiped: retry "unknown node" until then.
    std::string problem;
    bool joined = pollUntil(20s, [&]() {
      try {
        admin().join(address(i));
        return true;
      } catch (const std::exception& e) {
        problem = e.what();
        return false;
      }
    });
    INFO(problem);
    REQUIRE(joined);
  }

  ClusterStatus status(size_t i) { return admin().status(address(i)); }

  void awaitSettled(const std::vector<size_t>& members, std::chrono::seconds timeout = 60s) {
    bool ok = true;
    try {
      cluster_->waitSettled(timeout, members);
    } catch (const std::exception& e) {
      UNSCOPED_INFO(e.what());
      ok = false;
    }
    if (!ok) {
      for (size_t i : members) {
        try {
          auto s = status(i);
          for (auto& m : s.members) {
            UNSCOPED_INFO(address(i) << " sees " << m.address << " " << m.status << " map v"
                                     << m.mapVersion << " pending " << m.pendingTransfers);
          }
        } catch (const std::exception& e) {
          UNSCOPED_INFO(e.what());
        }
      }
    }
    REQUIRE(ok);
  }

  PartitionMap map(size_t i) { return admin().map(address(i)); }

  std::optional<std::vector<std::string>> localValues(size_t i, const std::string& key) {
    return admin().localValues(address(i), key);
  }

  void pause(size_t i) {
    kill(cluster_->pid(i), SIGSTOP);
    stopped_.insert(i);
  }
  void resume(size_t i) {
    kill(cluster_->pid(i), SIGCONT);
    stopped_.erase(i);
  }

  ClientOptions clientOptions() {
    ClientOptions options;
    options.seeds = {address(0)};
    options.cluster = cluster_->clusterName();
    return options;
  }

 private:
  std::string dir_;
  std::unique_ptr<LocalCluster> cluster_;
  std::set<size_t> stopped_;
};

std::vector<size_t> range(size_t n) {
  std::vector<size_t> out;
  for (size_t i = 0; i < n; i++) out.push_back(i);
  return out;
}

class Load {
  // A client writing new keys and reading earlier ones, continuously, N=3 R=2 W=2, on a
  // thread of its own, counting every operation that fails.
 public:
  explicit Load(ClientOptions options) : client_(options) {
    thread_ = std::thread([this]() { run(); });
  }
  ~Load() { stop(); }

  void stop() {
    if (thread_.joinable()) {
      stopping_ = true;
      thread_.join();
    }
  }

  void awaitOps(size_t count) {
    REQUIRE(pollUntil(60s, [&]() { return ops_.load() >= count; }));
  }

  size_t ops() const { return ops_; }
  std::vector<std::string> failures() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failures_;
  }
  std::vector<std::string> keys() {
    std::lock_guard<std::mutex> lock(mutex_);
    return written_;
  }

 private:
  Client client_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> ops_{0};
  std::mutex mutex_;
  std::vector<std::string> written_;
  std::vector<std::string> failures_;

  void run() {
    std::mt19937 rng(1);
    for (size_t i = 0; !stopping_; i++) {
      std::string key = "load-" + std::to_string(i);
      try {
        client_.put(key, "value-" + key);
        std::lock_guard<std::mutex> lock(mutex_);
        written_.push_back(key);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex_);
        failures_.push_back("put " + key + ": " + e.what());
      }
      ops_++;
      std::string earlier;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!written_.empty()) earlier = written_[rng() % written_.size()];
      }
      if (earlier.empty()) continue;
      try {
        auto got = client_.get(earlier);
        if (got.values() != std::vector<std::string>{"value-" + earlier}) {
          std::lock_guard<std::mutex> lock(mutex_);
          failures_.push_back("get " + earlier + ": wrong or missing value");
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mutex_);
        failures_.push_back("get " + earlier + ": " + e.what());
      }
      ops_++;
    }
  }
};

void requireAllReadable(const ClientOptions& options, const std::vector<std::string>& keys) {
  Client client(options);
  size_t missing = 0;
  for (auto& key : keys) {
    auto got = client.get(key);
    if (got.values() != std::vector<std::string>{"value-" + key}) missing++;
  }
  CHECK(missing == 0);
}

std::vector<size_t> replicasOf(const PartitionMap& map, const std::string& key,
                               const std::vector<std::string>& addresses) {
  auto pref = map.preferenceList(map.partitionOf(keyHash("", key)), 3, 0);
  std::vector<size_t> out;
  for (uint32_t i = 0; i < pref.primaries; i++) {
    auto& address = map.nodes()[pref.nodes[i]].address;
    for (size_t j = 0; j < addresses.size(); j++) {
      if (addresses[j] == address) out.push_back(j);
    }
  }
  return out;
}

TEST_CASE("membership: five nodes started from seeds agree on members and map") {
  Ring ring(5);
  for (size_t i = 0; i < 5; i++) ring.start(i);
  for (size_t i = 0; i < 5; i++) ring.join(i);
  ring.awaitSettled(range(5));
  // Rounds, not seconds: the gossip heartbeat counts each node's rounds since it started.
  uint64_t rounds = 0;
  for (auto& m : ring.status(0).members) rounds = std::max(rounds, m.heartbeat);
  std::cout << "5 real nodes: members and map agreed within " << rounds << " gossip rounds"
            << std::endl;
  CHECK(rounds <= 30);
  auto map = ring.map(3);
  CHECK(map.nodes().size() == 5);
  for (size_t i = 0; i < 5; i++) CHECK(ring.map(i) == map);
  // A client given one seed learns all five.
  Client client(ring.clientOptions());
  CHECK(client.ring().nodes.size() == 5);
}

TEST_CASE("membership: a sixth node joins under load with no failure and minimal movement") {
  Ring ring(6);
  for (size_t i = 0; i < 5; i++) ring.start(i);
  for (size_t i = 0; i < 5; i++) ring.join(i);
  ring.awaitSettled(range(5));
  auto before = ring.map(0);

  Load load(ring.clientOptions());
  load.awaitOps(400);
  ring.start(5);
  ring.join(5);
  ring.awaitSettled(range(6));
  size_t after = load.ops();
  load.awaitOps(after + 200);
  load.stop();

  auto failures = load.failures();
  for (auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());

  auto map = ring.map(0);
  REQUIRE(map.nodes().size() == 6);
  uint32_t moved = 0;
  for (uint32_t p = 0; p < map.partitionCount(); p++) {
    if (map.nodes()[map.owners()[p]].id != before.nodes()[before.owners()[p]].id) moved++;
  }
  double minimum = map.partitionCount() / 6.0;
  std::cout << "join of a 6th node: " << moved << " partitions moved, minimum "
            << uint32_t(std::ceil(minimum)) << std::endl;
  CHECK(moved <= 1.1 * minimum);

  auto keys = load.keys();
  requireAllReadable(ring.clientOptions(), keys);
  // The new node holds what the map gives it.
  auto addresses = ring.cluster().seeds();
  size_t checked = 0;
  for (auto& key : keys) {
    auto replicas = replicasOf(map, key, addresses);
    if (std::find(replicas.begin(), replicas.end(), 5) == replicas.end()) continue;
    auto held = ring.localValues(5, key);
    CHECK(held == std::optional<std::vector<std::string>>({"value-" + key}));
    checked++;
  }
  CHECK(checked > 0);
}

TEST_CASE("membership: a node leaves under load and every key keeps N replicas") {
  Ring ring(5);
  for (size_t i = 0; i < 5; i++) ring.start(i);
  for (size_t i = 0; i < 5; i++) ring.join(i);
  ring.awaitSettled(range(5));

  Load load(ring.clientOptions());
  load.awaitOps(400);
  ring.admin().leave(ring.address(4));
  REQUIRE(pollUntil(60s, [&]() {
    try {
      for (auto& m : ring.status(0).members) {
        if (m.address == ring.address(4)) return m.status == "removed";
      }
    } catch (const std::exception&) {
    }
    return false;
  }));
  ring.awaitSettled(range(4));
  size_t after = load.ops();
  load.awaitOps(after + 200);
  load.stop();

  auto failures = load.failures();
  for (auto& f : failures) UNSCOPED_INFO(f);
  CHECK(failures.empty());

  auto map = ring.map(0);
  CHECK(map.nodes().size() == 4);
  auto keys = load.keys();
  requireAllReadable(ring.clientOptions(), keys);
  auto addresses = ring.cluster().seeds();
  size_t incomplete = 0;
  for (auto& key : keys) {
    auto replicas = replicasOf(map, key, addresses);
    REQUIRE(replicas.size() == 3);
    for (size_t r : replicas) {
      if (ring.localValues(r, key) != std::optional<std::vector<std::string>>({"value-" + key})) {
        incomplete++;
      }
    }
  }
  CHECK(incomplete == 0);
}

TEST_CASE("membership: a restarted node rejoins with its identity and its data") {
  Ring ring(3);
  for (size_t i = 0; i < 3; i++) ring.start(i);
  for (size_t i = 0; i < 3; i++) ring.join(i);
  ring.awaitSettled(range(3));
  Client client(ring.clientOptions());
  for (int i = 0; i < 50; i++) client.put("r" + std::to_string(i), "v" + std::to_string(i));
  uint64_t id = 0;
  for (auto& m : ring.status(0).members) {
    if (m.address == ring.address(2)) id = m.id;
  }

  ring.cluster().kill(2, SIGKILL);
  ring.start(2);  // no join: it remembers that it is in the ring
  ring.awaitSettled(range(3));
  for (auto& m : ring.status(2).members) {
    if (m.address == ring.address(2)) {
      CHECK(m.id == id);
      CHECK(m.status == "up");
    }
  }
  for (int i = 0; i < 50; i++) {
    auto key = "r" + std::to_string(i);
    CHECK(ring.localValues(2, key) ==
          std::optional<std::vector<std::string>>({"v" + std::to_string(i)}));
  }
}

TEST_CASE("membership: a paused node is routed around, and used again once resumed") {
  Ring ring(5);
  for (size_t i = 0; i < 5; i++) ring.start(i);
  for (size_t i = 0; i < 5; i++) ring.join(i);
  ring.awaitSettled(range(5));
  Client client(ring.clientOptions());
  client.put("warm", "up");

  ring.pause(3);
  // Every operation succeeds while it is stopped: slow replicas are replaced by fallbacks.
  size_t failed = 0;
  for (int i = 0; i < 100; i++) {
    auto key = "paused-" + std::to_string(i);
    try {
      client.put(key, "v");
      if (client.get(key).values() != std::vector<std::string>{"v"}) failed++;
    } catch (const Error& e) {
      UNSCOPED_INFO(e.what());
      failed++;
    }
  }
  CHECK(failed == 0);
  // The nodes' failure detectors suspect it.
  REQUIRE(pollUntil(30s, [&]() {
    for (auto& m : ring.status(0).members) {
      if (m.address == ring.address(3)) return m.suspected;
    }
    return false;
  }));

  ring.resume(3);
  // Back in use: a write that needs all three replicas of a key it holds succeeds again.
  auto map = ring.map(0);
  auto addresses = ring.cluster().seeds();
  std::string key;
  for (int i = 0; key.empty(); i++) {
    auto candidate = "mine-" + std::to_string(i);
    auto replicas = replicasOf(map, candidate, addresses);
    if (std::find(replicas.begin(), replicas.end(), 3) != replicas.end()) key = candidate;
  }
  CallOptions all;
  all.w = 3;
  REQUIRE(pollUntil(30s, [&]() {
    try {
      client.put(key, "back", {}, all);
      return ring.localValues(3, key).has_value();
    } catch (const std::exception&) {
      return false;
    }
  }));
  REQUIRE(pollUntil(30s, [&]() {
    for (auto& m : ring.status(0).members) {
      if (m.address == ring.address(3)) return !m.suspected;
    }
    return false;
  }));
}

TEST_CASE("sloppy quorum: writes for a dead replica go to a fallback and are handed off") {
  Ring ring(5);
  for (size_t i = 0; i < 5; i++) ring.start(i);
  for (size_t i = 0; i < 5; i++) ring.join(i);
  ring.awaitSettled(range(5));
  auto map = ring.map(0);
  auto addresses = ring.cluster().seeds();

  // Keys that node 4 is a replica of.
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < 30; i++) {
    auto key = "hinted-" + std::to_string(i);
    auto replicas = replicasOf(map, key, addresses);
    if (std::find(replicas.begin(), replicas.end(), 4) != replicas.end()) keys.push_back(key);
  }

  ring.cluster().kill(4, SIGKILL);
  Client client(ring.clientOptions());
  CallOptions all;
  all.w = 3;  // three acks with one replica dead: only a hinted fallback can give the third
  for (auto& key : keys) client.put(key, "value-" + key, {}, all);

  // The fallbacks say, in gossip, which partitions they hold hints for: those partitions'
  // tombstones wait until the hints are out.
  auto hintedSeen = [&]() {
    uint32_t hinted = 0;
    for (auto& m : ring.status(0).members) hinted += m.handoffPartitions;
    return hinted;
  };
  CHECK(pollUntil(20s, [&]() { return hintedSeen() > 0; }));

  ring.start(4);
  // The fallbacks deliver their hints once the owner answers again.
  size_t delivered = 0;
  bool handedOff = pollUntil(60s, [&]() {
    delivered = 0;
    for (auto& key : keys) {
      try {
        if (ring.localValues(4, key) == std::optional<std::vector<std::string>>({"value-" + key})) {
          delivered++;
        }
      } catch (const std::exception&) {
      }
    }
    return delivered == keys.size();
  });
  CHECK(delivered == keys.size());
  for (auto& key : keys) {
    if (handedOff) break;  // below: where each key is, when it is not where it belongs
    std::string where;
    for (size_t n = 0; n < 5; n++) {
      try {
        where += std::to_string(n) + (ring.localValues(n, key) ? "+ " : "- ");
      } catch (const std::exception& e) {
        where += std::to_string(n) + "! ";
      }
    }
    std::cerr << key << ": " << where << std::endl;
  }
  // Once delivered, the hints are removed and the fallbacks say they hold none.
  CHECK(pollUntil(30s, [&]() { return hintedSeen() == 0; }));
}

TEST_CASE("membership: a transfer interrupted by kill -9 resumes after restart") {
  // A slow stream (64 KiB/s) so that the kill lands mid-transfer.
  Ring ring(4, {"--transfer-rate", "65536"});
  for (size_t i = 0; i < 3; i++) ring.start(i);
  for (size_t i = 0; i < 3; i++) ring.join(i);
  ring.awaitSettled(range(3));
  Client client(ring.clientOptions());
  std::string value(2048, 'x');
  std::vector<std::string> keys;
  for (int i = 0; i < 400; i++) {
    keys.push_back("t" + std::to_string(i));
    client.put(keys.back(), value);
  }

  ring.start(3);
  ring.join(3);
  REQUIRE(pollUntil(30s, [&]() {
    for (auto& m : ring.status(3).members) {
      if (m.address == ring.address(3)) return m.pendingTransfers > 0;
    }
    return false;
  }));
  ring.cluster().kill(3, SIGKILL);
  ring.start(3);
  ring.awaitSettled(range(4), 120s);

  auto map = ring.map(0);
  auto addresses = ring.cluster().seeds();
  size_t missing = 0, held = 0;
  for (auto& key : keys) {
    auto replicas = replicasOf(map, key, addresses);
    if (std::find(replicas.begin(), replicas.end(), 3) == replicas.end()) continue;
    held++;
    if (ring.localValues(3, key) != std::optional<std::vector<std::string>>({value})) missing++;
  }
  CHECK(held > 0);
  CHECK(missing == 0);
}

}  // namespace
}  // namespace dynkv::test
