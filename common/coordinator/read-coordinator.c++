#include "read-coordinator.h"

#include <kj/debug.h>

namespace dynkv {

bool answered(ReplicaError error) {
  switch (error) {
    case ReplicaError::INVALID_REQUEST:
    case ReplicaError::REFUSED:
    case ReplicaError::MALFORMED:
      return true;
    case ReplicaError::UNREACHABLE:
    case ReplicaError::TIMEOUT:
    case ReplicaError::OVERLOADED:
    case ReplicaError::NO_COPY:
      return false;
  }
  return false;
}

const char* toString(ReplicaError error) {
  switch (error) {
    case ReplicaError::UNREACHABLE:
      return "unreachable";
    case ReplicaError::TIMEOUT:
      return "no answer within the replica timeout";
    case ReplicaError::OVERLOADED:
      return "overloaded";
    case ReplicaError::INVALID_REQUEST:
      return "invalid request";
    case ReplicaError::REFUSED:
      return "refused";
    case ReplicaError::MALFORMED:
      return "malformed answer";
    case ReplicaError::NO_COPY:
      return "fallback holds no copy of the key";
  }
  return "unknown";
}

CallFailure quorumFailure(const std::vector<ReplicaOutcome>& outcomes,
                          const std::vector<Target>& targets, uint32_t got, uint32_t required,
                          const std::string& what, const PartitionMap& map) {
  CallFailure failure;
  failure.got = got;
  failure.required = required;
  bool refused = false;
  for (size_t i = 0; i < outcomes.size(); i++) {
    if (outcomes[i].state != ReplicaOutcome::State::FAILED) continue;
    failure.faults.push_back(ReplicaFault{targets[i].node, outcomes[i].error, outcomes[i].detail});
    refused |= answered(outcomes[i].error);
  }
  // A refusal that names a limit is the caller's mistake, whoever noticed it.
  bool invalid = !failure.faults.empty();
  for (auto& f : failure.faults) invalid &= f.error == ReplicaError::INVALID_REQUEST;
  if (invalid) {
    failure.kind = FailureKind::INVALID_ARGUMENT;
    failure.message = failure.faults.front().detail;
    return failure;
  }
  failure.kind = refused ? FailureKind::REJECTED : FailureKind::UNAVAILABLE;
  failure.message = what + ": " + std::to_string(got) + " of " + std::to_string(required) +
                    " required replicas answered";
  for (auto& f : failure.faults) {
    failure.message += "; " + map.nodes()[f.node].address + ": " +
                       (f.detail.empty() ? toString(f.error) : f.detail);
  }
  return failure;
}

ReadCoordinator::ReadCoordinator(const PartitionMap& map, PreferenceList pref, uint32_t r,
                                 NamespaceKind kind)
    : map_(map), router_(map, std::move(pref)), kind_(kind), r_(r), quorum_(r, 0) {}

ReadActions ReadCoordinator::start(const Health& health) {
  targets_ = router_.initial(health);
  quorum_ = ReadQuorum(r_, targets_.size());
  ReadActions actions;
  for (size_t i = 0; i < targets_.size(); i++) actions.send.push_back(i);
  return check(std::move(actions));
}

ReadActions ReadCoordinator::onAnswer(size_t slot, std::optional<Object> copy,
                                      const Health& health) {
  if (copy && copy->kind != kind_ && !copy->empty()) {
    return onFailure(slot, ReplicaError::MALFORMED,
                     "namespace kind mismatch: the stored object has the other versioning", health);
  }
  if (!copy && targets_.at(slot).isFallback()) {
    // A fallback holding no copy (no hint) knows nothing of the key: counting its "not
    // found" toward R could hide an acknowledged write that the owners it stands in for
    // hold. It is no answer, and no further fallback is asked for it: the read waits for an
    // owner (or another fallback) instead.
    quorum_.failed(slot, ReplicaError::NO_COPY, "");
    return check({});
  }
  if (fastest_ == 0) fastest_ = map_.nodes()[targets_[slot].node].id;
  quorum_.answered(slot, std::move(copy));
  return check({});
}

ReadActions ReadCoordinator::onFailure(size_t slot, ReplicaError error, std::string detail,
                                       const Health& health) {
  quorum_.failed(slot, error, std::move(detail));
  ReadActions actions;
  if (!decided_ && !answered(error)) {
    if (auto fallback = router_.takeFallback(router_.ownerOf(targets_[slot]), health)) {
      targets_.push_back(*fallback);
      actions.send.push_back(quorum_.addReplica());
    }
  }
  return check(std::move(actions));
}

void ReadCoordinator::onDeadline() {
  if (decided_) return;
  decided_ = true;
  failure_ =
      quorumFailure(quorum_.replicas(), targets_, quorum_.answers(), r_, "read timed out", map_);
  failure_->kind = FailureKind::TIMEOUT;
}

ReadActions ReadCoordinator::check(ReadActions actions) {
  if (!decided_ && quorum_.succeeded()) {
    decided_ = actions.decided = true;
  } else if (!decided_ && quorum_.failedForGood()) {
    decided_ = actions.decided = true;
    failure_ = quorumFailure(quorum_.replicas(), targets_, quorum_.answers(), r_,
                             "read quorum not reached", map_);
  }
  if (quorum_.settled() && quorum_.succeeded() && !repaired_) {
    // Once every replica asked has answered or failed: those that answered with something
    // other than the merge get it. Fallbacks are not owners and are not repaired.
    repaired_ = true;
    for (size_t i : quorum_.staleReplicas()) {
      if (!targets_[i].isFallback()) actions.repair.push_back(i);
    }
  }
  return actions;
}

}  // namespace dynkv
