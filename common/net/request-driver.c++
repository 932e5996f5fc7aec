// The shell around the coordinator core: one refcounted run per call, alive while the caller
// waits or any replica call of it is outstanding. The coordinator decides; the run sends what
// it says and feeds back what happens.
#include "request-driver.h"

#include <random>

#include <kj/debug.h>

#include "hash.h"
#include "read-coordinator.h"
#include "write-coordinator.h"

namespace dynkv {

namespace {

constexpr uint32_t MAX_FALLBACKS = 8;

class ReplicaHealth final : public Health {
  // The failure detector's view, as the coordinators ask for it.
 public:
  ReplicaHealth(const PartitionMap& map, const Replicas& replicas)
      : map_(map), replicas_(replicas) {}
  bool suspect(uint16_t node) const override { return replicas_.suspect(map_.nodes()[node]); }

 private:
  const PartitionMap& map_;
  const Replicas& replicas_;
};

PreferenceList preferenceListOf(const CoordinatedCall& call) {
  auto& map = *call.map;
  return map.preferenceList(map.partitionOf(keyHash(call.ns, call.key)), call.quorum.n,
                            MAX_FALLBACKS);
}

std::optional<CallFailure> tooFewNodes(const PartitionMap& map, const char* name,
                                       uint32_t required) {
  if (map.nodes().size() >= required) return std::nullopt;
  CallFailure failure;
  failure.kind = FailureKind::INVALID_ARGUMENT;
  failure.message = std::string(name) + "=" + std::to_string(required) +
                    " but the cluster has only " + std::to_string(map.nodes().size()) + " nodes";
  return failure;
}

}  // namespace

std::optional<std::string> checkQuorum(uint32_t n, uint32_t r, uint32_t w, int64_t timeoutMillis) {
  if (n < 1 || r < 1 || w < 1 || r > n || w > n) {
    return "quorum must satisfy 1 <= R <= N and 1 <= W <= N (got N=" + std::to_string(n) +
           " R=" + std::to_string(r) + " W=" + std::to_string(w) + ")";
  }
  if (n > Quorum::MAX_N) return "N is at most " + std::to_string(Quorum::MAX_N);
  if (timeoutMillis <= 0) return std::string("timeout must be positive");
  return std::nullopt;
}

// ---- reads ----

class RequestDriver::ReadRun final : public kj::Refcounted {
 public:
  ReadRun(RequestDriver& driver, CoordinatedCall call)
      : driver_(driver),
        call_(kj::mv(call)),
        key_{call_.map->version(), call_.ns, call_.key,
             call_.quorum.replicaTimeout() / kj::MICROSECONDS},
        health_(*call_.map, driver.replicas_),
        read_(*call_.map, preferenceListOf(call_), call_.quorum.r, call_.kind) {}

  kj::Promise<ReadOutcome> run() {
    auto paf = kj::newPromiseAndFulfiller<ReadOutcome>();
    fulfiller_ = kj::mv(paf.fulfiller);
    apply(read_.start(health_));
    auto deadline =
        driver_.timer_.afterDelay(call_.quorum.timeout).then([self = kj::addRef(*this)]() mutable {
          self->read_.onDeadline();
          return self->outcome();
        });
    return paf.promise.exclusiveJoin(kj::mv(deadline));
  }

  kj::Duration replicaTimeout() const { return call_.quorum.replicaTimeout(); }

  void fail(size_t slot, ReplicaError error, std::string detail) {
    apply(read_.onFailure(slot, error, kj::mv(detail), health_));
  }

 private:
  RequestDriver& driver_;
  CoordinatedCall call_;
  ReplicaKey key_;
  ReplicaHealth health_;
  ReadCoordinator read_;
  kj::Own<kj::PromiseFulfiller<ReadOutcome>> fulfiller_;

  const NodeInfo& node(size_t slot) const { return call_.map->nodes()[read_.target(slot).node]; }

  void apply(ReadActions actions) {
    for (size_t slot : actions.send) send(slot);
    for (size_t slot : actions.repair) repair(slot);
    if (actions.decided) fulfiller_->fulfill(outcome());
  }

  void send(size_t slot) {
    driver_.await(*this, slot, node(slot), driver_.replicas_.get(node(slot), key_),
                  [self = kj::addRef(*this), slot](Reply<std::optional<Object>>&& reply) mutable {
                    if (auto* failed = std::get_if<ReplicaFailed>(&reply)) {
                      self->fail(slot, failed->error, kj::mv(failed->detail));
                      return;
                    }
                    auto copy = std::get<std::optional<Object>>(kj::mv(reply));
                    self->apply(self->read_.onAnswer(slot, kj::mv(copy), self->health_));
                  });
  }

  void repair(size_t slot) {
    // Off the caller's path: the answer has already been returned, and nobody waits for this.
    driver_.tasks_.add(
        driver_.replicas_.replicate(node(slot), key_, read_.merged(), 0).attach(kj::addRef(*this)));
  }

  ReadOutcome outcome() {
    ReadOutcome out;
    if (!read_.succeeded()) {
      out.failure = read_.failure();
      return out;
    }
    out.merged = read_.merged();
    out.fastest = read_.fastest();
    return out;
  }
};

// ---- writes ----

class RequestDriver::WriteRun final : public kj::Refcounted {
 public:
  WriteRun(RequestDriver& driver, CoordinatedCall call, Write write)
      : driver_(driver),
        call_(kj::mv(call)),
        write_(kj::mv(write)),
        key_{call_.map->version(), call_.ns, call_.key,
             call_.quorum.replicaTimeout() / kj::MICROSECONDS},
        health_(*call_.map, driver.replicas_),
        coordinator_(*call_.map, preferenceListOf(call_), call_.quorum.w, call_.kind,
                     write_.context.fastest,
                     call_.kind == Versioning::LAST_WRITE_WINS
                         ? std::make_optional(lastWriteWinsObject(write_.value, write_.nowMicros))
                         : std::nullopt) {}

  kj::Promise<WriteOutcome> run() {
    auto paf = kj::newPromiseAndFulfiller<WriteOutcome>();
    fulfiller_ = kj::mv(paf.fulfiller);
    apply(coordinator_.start(health_));
    auto deadline =
        driver_.timer_.afterDelay(call_.quorum.timeout).then([self = kj::addRef(*this)]() mutable {
          self->coordinator_.onDeadline();
          return self->outcome();
        });
    return paf.promise.exclusiveJoin(kj::mv(deadline));
  }

  kj::Duration replicaTimeout() const { return call_.quorum.replicaTimeout(); }

  void fail(size_t slot, ReplicaError error, std::string detail) {
    apply(coordinator_.onFailure(slot, error, kj::mv(detail), health_));
  }

 private:
  RequestDriver& driver_;
  CoordinatedCall call_;
  Write write_;
  ReplicaKey key_;
  ReplicaHealth health_;
  WriteCoordinator coordinator_;
  kj::Own<kj::PromiseFulfiller<WriteOutcome>> fulfiller_;

  const NodeInfo& node(size_t slot) const {
    return call_.map->nodes()[coordinator_.target(slot).node];
  }

  void apply(WriteActions actions) {
    if (actions.coordinate) coordinate(*actions.coordinate);
    for (size_t slot : actions.replicate) replicateTo(slot);
    if (actions.decided) fulfiller_->fulfill(outcome());
  }

  void coordinate(size_t slot) {
    driver_.await(
        *this, slot, node(slot),
        driver_.replicas_.coordinatePut(node(slot), key_, write_.context.seen, write_.value,
                                        write_.writeId),
        [self = kj::addRef(*this), slot](Reply<Object>&& reply) mutable {
          if (auto* failed = std::get_if<ReplicaFailed>(&reply)) {
            self->fail(slot, failed->error, kj::mv(failed->detail));
            return;
          }
          auto object = std::get<Object>(kj::mv(reply));
          self->apply(self->coordinator_.onCoordinated(slot, kj::mv(object)));
        });
  }

  void replicateTo(size_t slot) {
    driver_.await(*this, slot, node(slot),
                  driver_.replicas_.replicate(node(slot), key_, coordinator_.object(),
                                              coordinator_.target(slot).hintFor),
                  [self = kj::addRef(*this), slot]() mutable {
                    self->apply(self->coordinator_.onAck(slot));
                  });
  }

  WriteOutcome outcome() {
    WriteOutcome out;
    if (!coordinator_.succeeded()) {
      out.failure = coordinator_.failure();
      return out;
    }
    out.object = coordinator_.object();
    out.coordinator = coordinator_.coordinator();
    return out;
  }
};

// ---- the driver ----

RequestDriver::RequestDriver(Replicas& replicas, kj::Timer& timer)
    : replicas_(replicas), timer_(timer), tasks_(*this) {}

RequestDriver::~RequestDriver() noexcept(false) {}

kj::Promise<ReadOutcome> RequestDriver::read(CoordinatedCall call) {
  if (auto failure = tooFewNodes(*call.map, "R", call.quorum.r)) {
    ReadOutcome outcome;
    outcome.failure = kj::mv(failure);
    return kj::mv(outcome);
  }
  return kj::refcounted<ReadRun>(*this, kj::mv(call))->run();
}

kj::Promise<WriteOutcome> RequestDriver::write(CoordinatedCall call, Write write) {
  if (write.writeId == 0) {
    // 64 random bits: two writes of one key share a name by chance once in ~10^19.
    thread_local std::mt19937_64 names{std::random_device{}()};
    while (write.writeId == 0) write.writeId = names();
  }
  if (auto failure = tooFewNodes(*call.map, "W", call.quorum.w)) {
    WriteOutcome outcome;
    outcome.failure = kj::mv(failure);
    return kj::mv(outcome);
  }
  return kj::refcounted<WriteRun>(*this, kj::mv(call), kj::mv(write))->run();
}

template <typename Run, typename T, typename OnReply>
void RequestDriver::await(Run& run, size_t slot, const NodeInfo& node, kj::Promise<T> reply,
                          OnReply onReply) {
  // One replica call in `slot`: its reply goes to onReply; no reply (the rejection,
  // classified) or silence past the replica timeout goes to run.fail(slot, ...). Whichever
  // comes first, exactly once; the other is dropped (a call dropped unanswered is cancelled).
  auto answered =
      reply.then(kj::mv(onReply), [self = kj::addRef(run), slot](kj::Exception&& e) mutable {
        self->fail(slot, classify(e), e.getDescription().cStr());
      });
  auto slow = timer_.afterDelay(run.replicaTimeout())
                  .then([this, self = kj::addRef(run), slot, &node]() mutable {
                    replicas_.timedOut(node);
                    self->fail(slot, ReplicaError::TIMEOUT, "");
                  });
  tasks_.add(answered.exclusiveJoin(kj::mv(slow)));
}

void RequestDriver::taskFailed(kj::Exception&& exception) {
  KJ_LOG(INFO, "background task failed", exception);
}

}  // namespace dynkv
