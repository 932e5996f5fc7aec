#include "simulated-network.h"

#include <algorithm>

namespace dynkv::sim {

SimulatedNetwork::SimulatedNetwork(uint64_t seed, size_t nodes, Options options)
    : rng_(seed), options_(options), nodes_(nodes) {}

void SimulatedNetwork::at(Micros when, std::function<void()> action) {
  clock_.at(when, std::move(action));
}

void SimulatedNetwork::after(size_t node, Micros delay, std::function<void()> action) {
  at(clock_.now() + delay,
     [this, node, incarnation = nodes_.at(node).incarnation, action = std::move(action)]() {
       if (nodes_[node].up && nodes_[node].incarnation == incarnation) action();
     });
}

void SimulatedNetwork::runUntil(Micros when) { clock_.runUntil(when); }

void SimulatedNetwork::crash(size_t node) {
  auto& n = nodes_.at(node);
  n.up = false;
  n.incarnation++;
}

void SimulatedNetwork::restart(size_t node) {
  auto& n = nodes_.at(node);
  n.up = true;
  n.incarnation++;
}

void SimulatedNetwork::partition(const std::vector<size_t>& side) {
  for (auto& n : nodes_) n.sideA = false;
  for (auto i : side) nodes_.at(i).sideA = true;
  partitioned_ = true;
}

void SimulatedNetwork::heal() {
  partitioned_ = false;
}

bool SimulatedNetwork::linked(size_t a, size_t b) const {
  return !partitioned_ || nodes_.at(a).sideA == nodes_.at(b).sideA;
}

void SimulatedNetwork::send(size_t from, size_t to, std::function<void()> deliver) {
  std::uniform_real_distribution<double> coin(0, 1);
  if (options_.loss > 0 && coin(rng_) < options_.loss) return;
  std::uniform_int_distribution<Micros> delay(options_.minDelay, options_.maxDelay);
  at(clock_.now() + delay(rng_), [this, from, to, deliver = std::move(deliver)]() {
    if (nodes_[to].up && linked(from, to)) deliver();
  });
}

}  // namespace dynkv::sim
