// A simulated network and clock for the deterministic simulations of the membership protocol
// and of hint delivery (simulated-cluster.h is the coordinators' own): nodes numbered 0..n-1,
// messages with random delays, random loss, partitions, and node crashes and restarts. One
// seeded generator decides everything, so a run is a pure function of its seed.
//
// What a node runs is the test's business: the network only says whether a message arrives
// and when, and runs timers that die with the node's incarnation (a crash forgets them).
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <random>
#include <vector>

#include "simulated-clock.h"

namespace dynkv::sim {


class SimulatedNetwork {
 public:
  struct Options {
    Micros minDelay = 1'000;  // one way, uniform in [minDelay, maxDelay]
    Micros maxDelay = 30'000;
    double loss = 0;  // probability that a message is lost
  };

  SimulatedNetwork(uint64_t seed, size_t nodes, Options options);

  std::mt19937_64& rng() { return rng_; }
  Micros now() const { return clock_.now(); }
  size_t size() const { return nodes_.size(); }

  // ---- time ----
  void at(Micros when, std::function<void()> action);
  // Runs `action` at `when` (not before now), whatever happens to the nodes.

  void after(size_t node, Micros delay, std::function<void()> action);
  // A timer of `node`: runs `action` after `delay` unless the node crashes meanwhile.

  void runUntil(Micros when);
  // Processes events up to `when`, in time order (ties in scheduling order); now() = `when`.

  // ---- faults ----
  bool up(size_t node) const { return nodes_.at(node).up; }
  uint64_t incarnation(size_t node) const { return nodes_.at(node).incarnation; }
  void crash(size_t node);    // down: it receives nothing, its timers die
  void restart(size_t node);  // up again, a new incarnation (the test rebuilds its state)
  void partition(const std::vector<size_t>& side);
  // Cuts every link between `side` and the other nodes (replacing any earlier partition).
  void heal();
  bool linked(size_t a, size_t b) const;
  void setLoss(double loss) { options_.loss = loss; }

  // ---- messages ----
  void send(size_t from, size_t to, std::function<void()> deliver);
  // Runs `deliver` (at `to`) after a random delay, unless the message is lost: at random, or
  // because at delivery `to` is down, or `from` and `to` are partitioned. Lost silently: the
  // sender learns of it only by a timeout of its own.

 private:
  struct Node {
    bool up = true;
    uint64_t incarnation = 0;
    bool sideA = false;  // which side of the current partition
  };
  std::mt19937_64 rng_;
  Options options_;
  SimulatedClock clock_;
  std::vector<Node> nodes_;
  bool partitioned_ = false;
};

}  // namespace dynkv::sim
