#include "write-coordinator.h"

#include <algorithm>

namespace dynkv {

WriteCoordinator::WriteCoordinator(const PartitionMap& map, PreferenceList pref, uint32_t w,
                                   Versioning kind, uint64_t preferredCoordinator,
                                   std::optional<Object> lastWriteWins)
    : map_(map),
      router_(map, std::move(pref)),
      kind_(kind),
      w_(w),
      preferredCoordinator_(preferredCoordinator),
      quorum_(w, 0),
      object_(std::move(lastWriteWins)) {}

WriteActions WriteCoordinator::start(const Health& health) {
  targets_ = router_.initial(health);
  quorum_ = WriteQuorum(w_, targets_.size());
  WriteActions actions;
  if (kind_ == Versioning::LAST_WRITE_WINS) {
    // The caller coordinates last-write-wins writes itself: one round trip to all N.
    for (size_t i = 0; i < targets_.size(); i++) actions.replicate.push_back(i);
  } else {
    // The coordinator is the replica that answered this key's last read first, else the
    // first healthy owner. A fallback never coordinates while an owner can: it would keep the
    // version as its own data instead of as a hint for the owner, and never hand it off.
    auto chosen = nextCoordinator().value_or(0);
    triedAsCoordinator_.push_back(chosen);
    actions.coordinate = chosen;
  }
  return check(std::move(actions));
}

WriteActions WriteCoordinator::onCoordinated(size_t slot, Object object) {
  object_ = std::move(object);
  coordinator_ = map_.nodes()[targets_.at(slot).node].id;
  quorum_.acked(slot);
  // Replicate the new version to every other replica, including those that were waiting
  // while the coordinator was found.
  WriteActions actions;
  for (size_t j = 0; j < targets_.size(); j++) {
    if (j != slot && quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING) {
      actions.replicate.push_back(j);
    }
  }
  return check(std::move(actions));
}

WriteActions WriteCoordinator::onAck(size_t slot) {
  quorum_.acked(slot);
  return check({});
}

WriteActions WriteCoordinator::onFailure(size_t slot, ReplicaError error, std::string detail,
                                         const Health& health) {
  quorum_.failed(slot, error, std::move(detail));
  WriteActions actions;
  bool fault = !answered(error);
  if (!decided_ && fault) substitute(slot, health, actions);
  if (!object_ && !decided_ && !quorum_.failedForGood() &&
      (fault || error == ReplicaError::REFUSED)) {
    // The coordinator failed or refused before minting (a full disk, a partition still
    // arriving: it stored nothing), or went silent: the next untried replica coordinates
    // instead. A silent one that reads the request only once its sender has given up on it
    // refuses it as stale (common/net/request-age.h), so the write is minted once. Only a
    // request refused as invalid is not tried elsewhere; every replica would refuse it.
    if (auto next = nextCoordinator()) {
      triedAsCoordinator_.push_back(*next);
      actions.coordinate = *next;
    }
  }
  return check(std::move(actions));
}

void WriteCoordinator::onDeadline() {
  if (decided_) return;
  decided_ = true;
  failure_ =
      quorumFailure(quorum_.replicas(), targets_, quorum_.acks(), w_, "write timed out", map_);
  failure_->kind = FailureKind::TIMEOUT;
}

std::optional<size_t> WriteCoordinator::nextCoordinator() const {
  // The preceding read's fastest replica if it is an owner still in play, else the first
  // such owner, else (every owner has failed) the first untried fallback.
  auto usable = [&](size_t j) {
    return std::find(triedAsCoordinator_.begin(), triedAsCoordinator_.end(), j) ==
               triedAsCoordinator_.end() &&
           quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING;
  };
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j) && !targets_[j].isFallback() &&
        map_.nodes()[targets_[j].node].id == preferredCoordinator_) {
      return j;
    }
  }
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j) && !targets_[j].isFallback()) return j;
  }
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j)) return j;
  }
  return std::nullopt;
}

void WriteCoordinator::substitute(size_t failed, const Health& health, WriteActions& actions) {
  // Sloppy quorum: the next fallback takes the write as a hint for the failed owner. It is
  // sent the object once there is one (at once, or when the coordinator has minted it).
  if (auto fallback = router_.takeFallback(router_.ownerOf(targets_[failed]), health)) {
    targets_.push_back(*fallback);
    size_t i = quorum_.addReplica();
    if (object_) actions.replicate.push_back(i);
  }
}

WriteActions WriteCoordinator::check(WriteActions actions) {
  if (decided_) return actions;
  if (quorum_.succeeded()) {
    decided_ = actions.decided = true;
  } else if (quorum_.failedForGood()) {
    decided_ = actions.decided = true;
    failure_ = quorumFailure(quorum_.replicas(), targets_, quorum_.acks(), w_,
                             "write quorum not reached", map_);
  } else if (!object_ && kind_ == Versioning::VECTOR_CLOCK) {
    // Every candidate coordinator failed or refused: nothing was written.
    bool anyCoordinating = false;
    for (size_t j : triedAsCoordinator_) {
      anyCoordinating |= quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING;
    }
    if (!anyCoordinating) {
      decided_ = actions.decided = true;
      failure_ = quorumFailure(quorum_.replicas(), targets_, 0, w_,
                               "no replica could coordinate the write", map_);
    }
  }
  return actions;
}

}  // namespace dynkv
