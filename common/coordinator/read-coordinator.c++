#include "read-coordinator.h"

namespace dynkv {

ReadCoordinator::ReadCoordinator(const PartitionMap& map, PreferenceList pref, uint32_t r,
                                 Versioning kind)
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
