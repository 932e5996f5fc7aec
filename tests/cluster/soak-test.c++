// The long fault scenario (ctest label `soak`, run by `./dev soak`, not by `./dev test`):
// a client writes and reads without pause while nodes are killed with -9 and restarted one
// at a time, for DYNKV_SOAK_SECONDS (default 60). Every write that was acknowledged must be
// readable at the end, with its value.
#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <mutex>
#include <thread>

#include "cluster-fixture.h"

namespace dynkv::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("soak: nodes killed and restarted under load lose no acknowledged write") {
  int seconds = getenv("DYNKV_SOAK_SECONDS") ? atoi(getenv("DYNKV_SOAK_SECONDS")) : 60;
  ClusterFixture cluster(5);
  auto options = cluster.clientOptions();

  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> acked;
  std::atomic<bool> stop{false};
  std::atomic<size_t> attempts{0}, failures{0};
  std::thread writer([&]() {
    Client client(options);
    for (size_t i = 0; !stop; i++) {
      auto key = "soak-" + std::to_string(i);
      auto value = "v" + std::to_string(i * 7919);
      attempts++;
      try {
        client.put(key, value);
        std::lock_guard<std::mutex> lock(mutex);
        acked.emplace_back(key, value);
      } catch (const Error&) {
        failures++;  // allowed: an unacknowledged write promises nothing
      }
    }
  });

  std::mt19937 rng(std::random_device{}());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  size_t kills = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    size_t victim = rng() % 5;
    cluster.killHard(victim);
    kills++;
    // Let the cluster run a while without the node, then bring it back with its data.
    size_t before = attempts;
    REQUIRE(pollUntil(30s, [&]() { return attempts >= before + 200; }));
    cluster.restart(victim);
    before = attempts;
    REQUIRE(pollUntil(30s, [&]() { return attempts >= before + 200; }));
  }
  stop = true;
  writer.join();

  Client reader(options);
  size_t lost = 0;
  for (auto& [key, value] : acked) {
    try {
      auto got = reader.get(key);
      // A write whose coordinator died after storing is retried at another one, so the same
      // value can come back twice as siblings: at least once, never lost.
      auto values = got.values();
      bool intact = !values.empty() &&
                    std::all_of(values.begin(), values.end(), [&](auto& v) { return v == value; });
      if (!intact) {
        lost++;
        std::cerr << key << ": expected " << value << ", read " << values.size()
                  << " live values of " << got.siblings.size() << " siblings" << std::endl;
      }
    } catch (const Error& e) {
      UNSCOPED_INFO(key << ": " << e.what());
      lost++;
    }
  }
  std::cout << "soak: " << kills << " kill -9s in " << seconds << " s, " << attempts
            << " writes attempted, " << acked.size() << " acknowledged, " << failures
            << " refused, " << lost << " acknowledged writes lost" << std::endl;
  CHECK(lost == 0);
  CHECK(acked.size() > 0);
}

}  // namespace
}  // namespace dynkv::test
