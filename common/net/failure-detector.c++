#include "failure-detector.h"

#include <algorithm>

namespace dynkv {

PhiAccrual::Options FailureDetector::Options::heartbeatDefaults() {
  // Heartbeats arrive about once a second, relayed through peers: allow for that jitter so a
  // live node is not suspected, while a stopped one is within a few seconds.
  PhiAccrual::Options o;
  o.minStdDevMillis = 500;
  o.acceptablePauseMillis = 1000;
  o.firstIntervalMillis = 1000;
  return o;
}

PhiAccrual::Options FailureDetector::Options::latencyDefaults() {
  // Loopback and LAN replies take well under a millisecond, but a busy node or a GC-like
  // stall of a few hundred milliseconds is normal: only a call older than that (and than the
  // spread of recent latencies) makes the node suspect.
  PhiAccrual::Options o;
  o.minStdDevMillis = 50;
  o.acceptablePauseMillis = 300;
  o.firstIntervalMillis = 1;
  return o;
}

FailureDetector::Node& FailureDetector::node(const std::string& address) {
  auto it = nodes_.find(address);
  if (it != nodes_.end()) return it->second;
  return nodes_
      .emplace(address,
               Node{PhiAccrual(options_.heartbeat), false, 0, 0, PhiAccrual(options_.latency), {}})
      .first->second;
}

const FailureDetector::Node* FailureDetector::find(const std::string& address) const {
  auto it = nodes_.find(address);
  return it == nodes_.end() ? nullptr : &it->second;
}

void FailureDetector::heartbeat(const std::string& address, Micros now) {
  auto& n = node(address);
  n.heartbeats.heartbeat(now / 1000);
  n.heard = true;
}

bool FailureDetector::heard(const std::string& address) const {
  auto n = find(address);
  return n != nullptr && n->heard;
}

double FailureDetector::heartbeatPhi(const std::string& address, Micros now) const {
  auto n = find(address);
  return n == nullptr ? 0 : n->heartbeats.phi(now / 1000);
}

uint64_t FailureDetector::callStarted(const std::string& address, Micros now) {
  uint64_t id = nextCall_++;
  calls_.emplace(id, Call{address, now});
  node(address).outstanding.emplace(id, now);
  return id;
}

void FailureDetector::callEnded(uint64_t id, Micros now, bool answered) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  auto& n = node(it->second.address);
  if (answered) n.latency.addInterval(double(now - it->second.sent) / 1000.0);
  n.outstanding.erase(id);
  calls_.erase(it);
}

void FailureDetector::callFailed(const std::string& address, Micros now) {
  auto& n = node(address);
  n.failures = std::min(n.failures + 1, 10u);
  Micros backoff = std::min(options_.firstBackoff << (n.failures - 1), options_.maxBackoff);
  n.retryAt = now + backoff;
}

void FailureDetector::callSucceeded(const std::string& address) {
  auto it = nodes_.find(address);
  if (it == nodes_.end()) return;
  it->second.failures = 0;
  it->second.retryAt = 0;
}

double FailureDetector::latencyPhi(const Node& n, Micros now) const {
  if (n.outstanding.empty()) return 0;
  Micros oldest = n.outstanding.begin()->second;
  return n.latency.phiAfter(double(now - oldest) / 1000.0);
}

bool FailureDetector::suspect(const std::string& address, Micros now) const {
  auto n = find(address);
  if (n == nullptr) return false;
  if (now < n->retryAt) return true;
  return std::max(latencyPhi(*n, now), n->heartbeats.phi(now / 1000)) > PHI_SUSPECT_THRESHOLD;
}

double FailureDetector::phi(const std::string& address, Micros now) const {
  auto n = find(address);
  if (n == nullptr) return 0;
  return std::max(latencyPhi(*n, now), n->heartbeats.phi(now / 1000));
}

}  // namespace dynkv
