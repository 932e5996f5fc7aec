#include "quorum.h"

#include <kj/debug.h>

namespace dynkv {

namespace {

size_t countPending(const std::vector<ReplicaOutcome>& replicas) {
  size_t n = 0;
  for (auto& r : replicas) n += r.state == ReplicaOutcome::State::PENDING;
  return n;
}

void markFailed(std::vector<ReplicaOutcome>& replicas, size_t i, ReplicaError error,
                std::string detail) {
  KJ_ASSERT(i < replicas.size() && replicas[i].state == ReplicaOutcome::State::PENDING);
  replicas[i].state = ReplicaOutcome::State::FAILED;
  replicas[i].error = error;
  replicas[i].detail = std::move(detail);
}

}  // namespace

ReadQuorum::ReadQuorum(uint32_t r, size_t replicas) : r_(r), replicas_(replicas) {}

void ReadQuorum::answered(size_t i, std::optional<Object> object) {
  KJ_ASSERT(i < replicas_.size() && replicas_[i].state == ReplicaOutcome::State::PENDING);
  if (object) merged_ = sync(merged_, *object);
  replicas_[i].state = ReplicaOutcome::State::ANSWERED;
  replicas_[i].object = std::move(object);
  answers_++;
}

void ReadQuorum::failed(size_t i, ReplicaError error, std::string detail) {
  markFailed(replicas_, i, error, std::move(detail));
}

size_t ReadQuorum::addReplica() {
  replicas_.emplace_back();
  return replicas_.size() - 1;
}

size_t ReadQuorum::pending() const {
  return countPending(replicas_);
}

std::vector<size_t> ReadQuorum::staleReplicas() const {
  std::vector<size_t> stale;
  if (merged_.empty()) return stale;
  for (size_t i = 0; i < replicas_.size(); i++) {
    auto& r = replicas_[i];
    if (r.state != ReplicaOutcome::State::ANSWERED) continue;
    if (!r.object || *r.object != merged_) stale.push_back(i);
  }
  return stale;
}

WriteQuorum::WriteQuorum(uint32_t w, size_t replicas) : w_(w), replicas_(replicas) {}

void WriteQuorum::acked(size_t i) {
  KJ_ASSERT(i < replicas_.size() && replicas_[i].state == ReplicaOutcome::State::PENDING);
  replicas_[i].state = ReplicaOutcome::State::ANSWERED;
  acks_++;
}

void WriteQuorum::failed(size_t i, ReplicaError error, std::string detail) {
  markFailed(replicas_, i, error, std::move(detail));
}

size_t WriteQuorum::addReplica() {
  replicas_.emplace_back();
  return replicas_.size() - 1;
}

size_t WriteQuorum::pending() const {
  return countPending(replicas_);
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

}  // namespace dynkv
