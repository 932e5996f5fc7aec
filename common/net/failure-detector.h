// The process's one failure detector (DESIGN.md, "Membership and failure detection"): what this
// process believes about each node it talks to, keyed by the node's address. Routing (the
// coordinators, hinted handoff, transfers) and gossip ask the same object, so a node the
// request path has found silent is not the gossip round's favourite peer, and a node whose
// heartbeats stopped is not routed to while gossip still hears nothing from it.
//
// Three kinds of evidence, each accrual-based or bounded in time:
// - heartbeats (storaged's gossip round reports each fresher heartbeat it learns of): phi
//   accrual over their inter-arrival times (the paper's §4.8);
// - call failures (the connection pool): a failed or timed-out call suspects the node for a
//   backoff that doubles with each consecutive failure (100 ms to 5 s); an answer clears it;
// - outstanding calls (the connection pool): phi accrual over the node's reply latencies,
//   applied to the age of its oldest unanswered call.
// A client SDK never reports heartbeats, so for it suspicion is exactly the last two.
//
// Pure: no I/O, no clock. Every time is passed in, in microseconds on one monotonic clock the
// caller chooses (storaged and the SDK: their kj::Timer; the simulation: its simulated clock).
// Not thread-safe; one per event loop.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>

#include "gossip-round.h"
#include "phi-accrual.h"

namespace dynkv {

class FailureDetector {
 public:
  using Micros = int64_t;

  struct Options {
    PhiAccrual::Options heartbeat = heartbeatDefaults();
    PhiAccrual::Options latency = latencyDefaults();
    Micros firstBackoff = 100'000;
    Micros maxBackoff = 5'000'000;

    static PhiAccrual::Options heartbeatDefaults();
    static PhiAccrual::Options latencyDefaults();
  };

  FailureDetector() : FailureDetector(Options{}) {}
  explicit FailureDetector(Options options) : options_(options) {}

  // ---- heartbeats (gossip) ----

  void heartbeat(const std::string& address, Micros now);
  // A fresher heartbeat of the node at `address` was learnt of now (directly or relayed).

  bool heard(const std::string& address) const;
  // True once heartbeat() has been called for `address` by this detector (this process).

  double heartbeatPhi(const std::string& address, Micros now) const;
  // Suspicion from heartbeats alone; 0 if none was ever reported.

  // ---- calls (the connection pool) ----

  uint64_t callStarted(const std::string& address, Micros now);
  // A call to `address` was sent now; returns its id for callEnded().

  void callEnded(uint64_t id, Micros now, bool answered);
  // The call ended: `answered` adds its latency to the node's history. An unknown or already
  // ended id is ignored (a call may end twice: answered, then destroyed).

  void callFailed(const std::string& address, Micros now);
  // A call to `address` failed or got no answer in time: suspect it for a backoff that
  // doubles with each consecutive failure.

  void callSucceeded(const std::string& address);
  // A call answered: the backoff is cleared.

  // ---- verdicts ----

  bool suspect(const std::string& address, Micros now) const;
  // Within a failure's backoff; or a call outstanding so long that, by the node's reply
  // latencies, an answer is no longer to be expected (phi > PHI_SUSPECT_THRESHOLD); or its
  // heartbeats have stopped (phi > PHI_SUSPECT_THRESHOLD). A node with no history at all is not
  // suspected: callers that need "heard from" ask heard().

  double phi(const std::string& address, Micros now) const;
  // The larger of the heartbeat phi and the outstanding-call phi (0 for no evidence).

 private:
  struct Node {
    PhiAccrual heartbeats;
    bool heard = false;
    uint32_t failures = 0;
    Micros retryAt = 0;
    PhiAccrual latency;
    std::map<uint64_t, Micros> outstanding;  // call id -> sent at; ids grow with time
  };
  struct Call {
    std::string address;
    Micros sent;
  };

  Options options_;
  std::unordered_map<std::string, Node> nodes_;
  std::map<uint64_t, Call> calls_;
  uint64_t nextCall_ = 1;

  Node& node(const std::string& address);
  const Node* find(const std::string& address) const;
  double latencyPhi(const Node& node, Micros now) const;
};

class DetectorLiveness final : public Liveness {
  // The gossip round's liveness (common/coordinator/gossip-round.h) is the process's failure
  // detector: heartbeats the round learns of feed it, and the round asks it whom to suspect.
 public:
  explicit DetectorLiveness(FailureDetector& detector) : detector_(detector) {}
  void heartbeat(const std::string& address, GossipMicros now) override {
    detector_.heartbeat(address, now);
  }
  bool suspected(const std::string& address, GossipMicros now) const override {
    return detector_.suspect(address, now);
  }

 private:
  FailureDetector& detector_;
};

}  // namespace dynkv
