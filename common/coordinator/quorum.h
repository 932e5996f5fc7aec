// The quorum counters (DESIGN.md, "Request paths"). Pure: they take replies and failures as
// they arrive and say when a request has succeeded, failed, or which replicas need repair.
// ReadCoordinator and WriteCoordinator are built on them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dvv.h"
#include "outcome.h"
#include "router.h"

namespace dynkv {

struct ReplicaOutcome {
  enum class State { PENDING, ANSWERED, FAILED };
  State state = State::PENDING;
  std::optional<Object> object;  // ANSWERED: the replica's copy (nullopt: it had none)
  ReplicaError error = ReplicaError::UNREACHABLE;  // FAILED: what went wrong
  std::string detail;                              // FAILED: what the node or transport said
};

class ReadQuorum {
  // Succeeds once `r` replicas have answered; fails once so many have failed that `r` answers
  // can no longer come. The answer is the sync of every answer so far.
 public:
  ReadQuorum(uint32_t r, size_t replicas);

  void answered(size_t replica, std::optional<Object> object);
  void failed(size_t replica, ReplicaError error, std::string detail);
  size_t addReplica();  // a fallback joins the read; returns its index

  bool succeeded() const { return answers_ >= r_; }
  bool failedForGood() const { return !succeeded() && answers_ + pending() < r_; }
  bool settled() const { return pending() == 0; }

  const Object& merged() const { return merged_; }
  uint32_t answers() const { return answers_; }
  size_t pending() const;
  const std::vector<ReplicaOutcome>& replicas() const { return replicas_; }

  std::vector<size_t> staleReplicas() const;
  // Replicas that answered with something other than the merged object: read repair sends
  // them merged(). Meaningful once settled().

 private:
  uint32_t r_;
  uint32_t answers_ = 0;
  Object merged_;
  std::vector<ReplicaOutcome> replicas_;
};

class WriteQuorum {
  // Succeeds once `w` replicas (hinted fallbacks included) have acknowledged.
 public:
  WriteQuorum(uint32_t w, size_t replicas);

  void acked(size_t replica);
  void failed(size_t replica, ReplicaError error, std::string detail);
  size_t addReplica();

  bool succeeded() const { return acks_ >= w_; }
  bool failedForGood() const { return !succeeded() && acks_ + pending() < w_; }
  bool settled() const { return pending() == 0; }

  uint32_t acks() const { return acks_; }
  size_t pending() const;
  const std::vector<ReplicaOutcome>& replicas() const { return replicas_; }

 private:
  uint32_t w_;
  uint32_t acks_ = 0;
  std::vector<ReplicaOutcome> replicas_;
};

CallFailure quorumFailure(const std::vector<ReplicaOutcome>& outcomes,
                          const std::vector<Target>& targets, uint32_t got, uint32_t required,
                          const std::string& what, const PartitionMap& map);
// Classifies a quorum that failed: INVALID_ARGUMENT when every failed replica refused the
// request as invalid, REJECTED when any refused, else UNAVAILABLE. The message names each
// failed replica (by address) and why.

}  // namespace dynkv
