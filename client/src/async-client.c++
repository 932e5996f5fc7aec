// The client-driven coordinator's shell (DESIGN.md, "Request paths"): the decisions of a get
// and a put (routing, quorums, sloppy quorum with hinted fallbacks, read repair) are the pure
// ReadCoordinator and WriteCoordinator of common/coordinator/; this file sends what they say
// over the connection pool and feeds their answers back.
#include <dynkv/async-client.h>
#include <kj/debug.h>
#include <kj/time.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>

#include "codec.h"
#include "context.h"
#include "hash.h"
#include "node-pool.h"
#include "read-coordinator.h"
#include "write-coordinator.h"

namespace dynkv {

namespace {

using MapSnapshot = std::shared_ptr<const PartitionMap>;

constexpr auto VIEW_REFRESH_INTERVAL = 10 * kj::SECONDS;
constexpr uint32_t MAX_FALLBACKS = 8;

int64_t wallClockMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

struct Quorum {
  uint32_t n, r, w;
  kj::Duration timeout;
  kj::Duration replicaTimeout;  // a replica silent this long is treated as failed
};

class PoolHealth final : public Health {
  // The failure detector's view, as the coordinators ask for it.
 public:
  PoolHealth(const PartitionMap& map, NodePool& pool) : map_(map), pool_(pool) {}
  bool suspect(uint16_t node) const override { return pool_.isSuspect(map_.nodes()[node].address); }

 private:
  const PartitionMap& map_;
  NodePool& pool_;
};

ReplicaError classify(const kj::Exception& e) {
  // The one place a transport failure becomes a ReplicaError. A node's refusal arrives as a
  // FAILED exception; the wire carries no error type, so a limit is recognised by the words
  // the service puts first ("invalid argument", storaged/service.c++).
  switch (e.getType()) {
    case kj::Exception::Type::FAILED:
    case kj::Exception::Type::UNIMPLEMENTED: {
      kj::StringPtr description = e.getDescription();
      return strstr(description.cStr(), "invalid argument") != nullptr
                 ? ReplicaError::INVALID_REQUEST
                 : ReplicaError::REFUSED;
    }
    case kj::Exception::Type::OVERLOADED:
      return ReplicaError::OVERLOADED;
    case kj::Exception::Type::DISCONNECTED:
      return ReplicaError::UNREACHABLE;
  }
  return ReplicaError::UNREACHABLE;
}

Error toError(const CallFailure& failure, const PartitionMap& map) {
  std::vector<ReplicaFailure> failures;
  for (auto& f : failure.faults) {
    failures.push_back(ReplicaFailure{map.nodes()[f.node].address,
                                      f.detail.empty() ? toString(f.error) : f.detail});
  }
  ErrorKind kind = ErrorKind::UNAVAILABLE;
  switch (failure.kind) {
    case FailureKind::UNAVAILABLE:
      kind = ErrorKind::UNAVAILABLE;
      break;
    case FailureKind::REJECTED:
      kind = ErrorKind::REJECTED;
      break;
    case FailureKind::INVALID_ARGUMENT:
      kind = ErrorKind::INVALID_ARGUMENT;
      break;
    case FailureKind::TIMEOUT:
      kind = ErrorKind::TIMEOUT;
      break;
  }
  return Error(kind, failure.message, kj::mv(failures), failure.got, failure.required);
}

class AsyncClientImpl;

class ReadOp final : public kj::Refcounted {
 public:
  ReadOp(AsyncClientImpl& client, MapSnapshot map, Key key, Versioning kind, Quorum q);
  kj::Promise<Result<GetResult>> run();
  void fail(size_t slot, ReplicaError error, std::string detail);  // the replica in slot failed

 private:
  AsyncClientImpl& client_;
  MapSnapshot map_;
  Key key_;
  Quorum q_;
  PoolHealth health_;
  ReadCoordinator read_;
  kj::Own<kj::PromiseFulfiller<Result<GetResult>>> fulfiller_;

  void apply(ReadActions actions);
  void send(size_t slot);
  void repair(size_t slot);
  Result<GetResult> result();
};

class WriteOp final : public kj::Refcounted {
 public:
  WriteOp(AsyncClientImpl& client, MapSnapshot map, Key key, Versioning kind, Quorum q,
          std::optional<std::string> value, DecodedContext context);
  kj::Promise<Result<Context>> run();
  void fail(size_t slot, ReplicaError error, std::string detail);  // the replica in slot failed

 private:
  AsyncClientImpl& client_;
  MapSnapshot map_;
  Key key_;
  Versioning kind_;
  Quorum q_;
  std::optional<std::string> value_;
  DecodedContext context_;
  PoolHealth health_;
  WriteCoordinator write_;
  kj::Own<kj::PromiseFulfiller<Result<Context>>> fulfiller_;

  void apply(WriteActions actions);
  void coordinate(size_t slot);
  void replicateTo(size_t slot);
  Result<Context> result();
};

class AsyncClientImpl final : public AsyncClient, private kj::TaskSet::ErrorHandler {
 public:
  AsyncClientImpl(kj::Network& network, kj::Timer& timer, ClientOptions options)
      : options_(kj::mv(options)),
        timer_(timer),
        pool_(network, timer, detector_, options_.cluster, options_.secret, limits_.maxValueBytes),
        rng_(std::random_device{}()),
        tasks_(*this) {
    tasks_.add(refreshLoop());
  }

  kj::Promise<Result<GetResult>> get(Key key, CallOptions options) override {
    Quorum q;
    KJ_IF_MAYBE (error, quorumFor(options, q)) {
      return Result<GetResult>(kj::mv(*error));
    }
    auto kind = kindOf(key.ns);
    auto deadline = timer_.now() + q.timeout;
    return withView<GetResult>(
        deadline,
        [this, key = kj::mv(key), kind,
         q](MapSnapshot map) mutable -> kj::Promise<Result<GetResult>> {
          // Checked against the limits the cluster announced with its view, not our defaults.
          if (auto problem = checkKey(limits_, key.ns, key.key)) {
            return Result<GetResult>(Error(ErrorKind::INVALID_ARGUMENT, *problem));
          }
          auto op = kj::refcounted<ReadOp>(*this, kj::mv(map), kj::mv(key), kind, q);
          return op->run();
        });
  }

  kj::Promise<Result<Context>> put(Key key, std::string value, Context context,
                                   CallOptions options) override {
    return write(kj::mv(key), kj::mv(value), kj::mv(context), options);
  }

  kj::Promise<Result<Context>> remove(Key key, Context context, CallOptions options) override {
    return write(kj::mv(key), std::nullopt, kj::mv(context), options);
  }

  kj::Promise<Result<RingInfo>> ring() override {
    auto deadline = timer_.now() + kj::MILLISECONDS * options_.timeout.count();
    return withView<RingInfo>(deadline, [](MapSnapshot map) -> kj::Promise<Result<RingInfo>> {
      RingInfo info;
      info.version = map->version();
      info.partitions = map->partitionCount();
      auto shares = map->shares();
      for (size_t i = 0; i < map->nodes().size(); i++) {
        auto& n = map->nodes()[i];
        info.nodes.push_back(RingNode{n.id, n.name, n.address, n.zone, n.weight, shares[i],
                                      double(shares[i]) / map->partitionCount()});
      }
      return Result<RingInfo>(kj::mv(info));
    });
  }

  // ---- shared with the operations ----

  NodePool& pool() { return pool_; }
  kj::Timer& timer() { return timer_; }
  const Limits& limits() const { return limits_; }
  void addTask(kj::Promise<void> task) { tasks_.add(kj::mv(task)); }

  template <typename Op, typename Response, typename OnReply>
  void callReplica(Op& op, size_t slot, const std::string& address, kj::Duration timeout,
                   kj::Promise<Response> sent, OnReply onReply) {
    // One request to the replica in `slot`: its reply goes to onReply; a transport failure
    // (classified) or silence past `timeout` goes to op.fail(slot, ...). Whichever comes
    // first, exactly once.
    auto call = pool_.track(address, kj::mv(sent))
                    .then(kj::mv(onReply),
                          [this, self = kj::addRef(op), slot, address](kj::Exception&& e) mutable {
                            pool_.reportFailure(address, e);
                            self->fail(slot, classify(e), e.getDescription().cStr());
                          });
    auto slow =
        timer_.afterDelay(timeout).then([this, self = kj::addRef(op), slot, address]() mutable {
          pool_.reportTimeout(address);
          self->fail(slot, ReplicaError::TIMEOUT, "");
        });
    tasks_.add(call.exclusiveJoin(kj::mv(slow)));
  }

  void noteVersion(uint64_t version) {
    // A node answered with a newer map: fetch it now rather than at the next periodic pull.
    if (map_ && version > map_->version()) tasks_.add(refresh());
  }

 private:
  ClientOptions options_;
  Limits limits_;
  kj::Timer& timer_;
  FailureDetector detector_;  // this client's: it has no heartbeats, only its calls
  NodePool pool_;
  MapSnapshot map_;
  std::mt19937_64 rng_;
  kj::Maybe<kj::ForkedPromise<void>> refreshing_;
  bool refreshInFlight_ = false;
  kj::TaskSet tasks_;

  void taskFailed(kj::Exception&& exception) override {
    KJ_LOG(INFO, "background task failed", exception);
  }

  Versioning kindOf(const std::string& ns) const {
    // The public NamespaceKind becomes the core's Versioning here, at the SDK's edge.
    auto it = options_.namespaces.find(ns);
    return it != options_.namespaces.end() && it->second == NamespaceKind::LAST_WRITE_WINS
               ? Versioning::LAST_WRITE_WINS
               : Versioning::VECTOR_CLOCK;
  }

  kj::Maybe<Error> quorumFor(const CallOptions& options, Quorum& q) const {
    q.n = options.n.value_or(options_.n);
    q.r = options.r.value_or(options_.r);
    q.w = options.w.value_or(options_.w);
    auto ms = options.timeout.value_or(options_.timeout).count();
    if (q.n < 1 || q.r < 1 || q.w < 1 || q.r > q.n || q.w > q.n) {
      return Error(ErrorKind::INVALID_ARGUMENT,
                   "quorum must satisfy 1 <= R <= N and 1 <= W <= N (got N=" + std::to_string(q.n) +
                       " R=" + std::to_string(q.r) + " W=" + std::to_string(q.w) + ")");
    }
    if (q.n > 64) return Error(ErrorKind::INVALID_ARGUMENT, "N is at most 64");
    if (ms <= 0) return Error(ErrorKind::INVALID_ARGUMENT, "timeout must be positive");
    q.timeout = ms * kj::MILLISECONDS;
    q.replicaTimeout = kj::max(q.timeout / 2, 1 * kj::MILLISECONDS);
    return nullptr;
  }

  kj::Promise<Result<Context>> write(Key key, std::optional<std::string> value, Context context,
                                     const CallOptions& options) {
    Quorum q;
    KJ_IF_MAYBE (error, quorumFor(options, q)) {
      return Result<Context>(kj::mv(*error));
    }
    DecodedContext decoded;
    try {
      decoded = decodeContext(context);
    } catch (const Error& e) {
      return Result<Context>(e);
    }
    auto kind = kindOf(key.ns);
    auto deadline = timer_.now() + q.timeout;
    return withView<Context>(
        deadline,
        [this, key = kj::mv(key), kind, q, value = kj::mv(value),
         decoded = kj::mv(decoded)](MapSnapshot map) mutable -> kj::Promise<Result<Context>> {
          // Checked against the limits the cluster announced with its view, not our defaults.
          if (auto problem = checkKey(limits_, key.ns, key.key)) {
            return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT, *problem));
          }
          if (value) {
            if (auto problem = checkValue(limits_, *value)) {
              return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT, *problem));
            }
          }
          auto op = kj::refcounted<WriteOp>(*this, kj::mv(map), kj::mv(key), kind, q, kj::mv(value),
                                            kj::mv(decoded));
          return op->run();
        });
  }

  template <typename T, typename Func>
  kj::Promise<Result<T>> withView(kj::TimePoint deadline, Func&& func) {
    // Runs func(map) with the current view (fetching one first if there is none), bounded
    // by the call's deadline.
    kj::Promise<MapSnapshot> view =
        map_ ? kj::Promise<MapSnapshot>(map_) : refresh().then([this]() { return map_; });
    auto work = view.then(
        [func = kj::fwd<Func>(func)](MapSnapshot map) mutable -> kj::Promise<Result<T>> {
          return func(kj::mv(map));
        },
        [](kj::Exception&& e) -> kj::Promise<Result<T>> {
          return Result<T>(
              Error(ErrorKind::UNAVAILABLE,
                    std::string("cannot fetch the cluster view: ") + e.getDescription().cStr()));
        });
    auto timeout = timer_.atTime(deadline).then([]() -> Result<T> {
      return Error(ErrorKind::TIMEOUT, "deadline passed before the request completed");
    });
    return work.exclusiveJoin(kj::mv(timeout));
  }

  kj::Promise<void> refresh() {
    if (refreshInFlight_) {
      KJ_IF_MAYBE (f, refreshing_) {
        return f->addBranch();
      }
    }
    std::vector<std::string> candidates;
    if (map_) {
      for (auto& n : map_->nodes()) candidates.push_back(n.address);
      std::shuffle(candidates.begin(), candidates.end(), rng_);
    }
    auto seeds = options_.seeds;
    std::shuffle(seeds.begin(), seeds.end(), rng_);
    candidates.insert(candidates.end(), seeds.begin(), seeds.end());
    refreshInFlight_ = true;
    auto fork = fetchView(kj::mv(candidates), 0, "")
                    .then([this]() { refreshInFlight_ = false; },
                          [this](kj::Exception&& e) {
                            refreshInFlight_ = false;
                            kj::throwFatalException(kj::mv(e));
                          })
                    .fork();
    auto branch = fork.addBranch();
    refreshing_ = kj::mv(fork);
    return branch;
  }

  kj::Promise<void> fetchView(std::vector<std::string> candidates, size_t i, std::string errors) {
    if (i >= candidates.size()) {
      if (candidates.empty()) errors = "no seeds given";
      return KJ_EXCEPTION(DISCONNECTED, "no node answered", errors);
    }
    auto address = candidates[i];
    auto call = pool_.node(address).then(
        [](wire::Node::Client node) -> kj::Promise<capnp::Response<wire::Node::GetViewResults>> {
          return node.getViewRequest().send();
        });
    auto timeout = kj::MILLISECONDS * options_.timeout.count();
    return timer_.timeoutAfter(timeout, kj::mv(call))
        .then(
            [this](capnp::Response<wire::Node::GetViewResults>&& response) -> kj::Promise<void> {
              auto map = decodePartitionMap(response.getMap());
              if (!map_ || map.version() > map_->version()) {
                map_ = std::make_shared<const PartitionMap>(kj::mv(map));
              }
              auto limits = response.getLimits();
              if (limits.getMaxKeyBytes() > 0) limits_.maxKeyBytes = limits.getMaxKeyBytes();
              if (limits.getMaxValueBytes() > 0) {
                limits_.maxValueBytes = limits.getMaxValueBytes();
              }
              return kj::READY_NOW;
            },
            [this, candidates = kj::mv(candidates), i, errors = kj::mv(errors),
             address](kj::Exception&& e) mutable {
              pool_.reportFailure(address, e);
              errors += address + ": " + e.getDescription().cStr() + "; ";
              return fetchView(kj::mv(candidates), i + 1, kj::mv(errors));
            });
  }

  kj::Promise<void> refreshLoop() {
    return timer_.afterDelay(VIEW_REFRESH_INTERVAL).then([this]() {
      kj::Promise<void> pull = map_ ? refresh() : kj::READY_NOW;
      return pull.catch_([](kj::Exception&& e) { KJ_LOG(INFO, "periodic view refresh failed", e); })
          .then([this]() { return refreshLoop(); });
    });
  }
};

// ---- ReadOp ----

ReadOp::ReadOp(AsyncClientImpl& client, MapSnapshot map, Key key, Versioning kind, Quorum q)
    : client_(client),
      map_(kj::mv(map)),
      key_(kj::mv(key)),
      q_(q),
      health_(*map_, client.pool()),
      read_(*map_,
            map_->preferenceList(map_->partitionOf(keyHash(key_.ns, key_.key)), q.n, MAX_FALLBACKS),
            q.r, kind) {}

kj::Promise<Result<GetResult>> ReadOp::run() {
  if (map_->nodes().size() < q_.r) {
    return Result<GetResult>(Error(ErrorKind::INVALID_ARGUMENT,
                                   "R=" + std::to_string(q_.r) + " but the cluster has only " +
                                       std::to_string(map_->nodes().size()) + " nodes"));
  }
  auto paf = kj::newPromiseAndFulfiller<Result<GetResult>>();
  fulfiller_ = kj::mv(paf.fulfiller);
  apply(read_.start(health_));
  auto timeout = client_.timer().afterDelay(q_.timeout).then([self = kj::addRef(*this)]() mutable {
    self->read_.onDeadline();
    return self->result();
  });
  return paf.promise.exclusiveJoin(kj::mv(timeout));
}

void ReadOp::apply(ReadActions actions) {
  for (size_t slot : actions.send) send(slot);
  for (size_t slot : actions.repair) repair(slot);
  if (actions.decided) fulfiller_->fulfill(result());
}

Result<GetResult> ReadOp::result() {
  if (!read_.succeeded()) return toError(read_.failure(), *map_);
  GetResult result;
  for (auto& s : read_.merged().siblings) {
    result.siblings.push_back(Version{s.value.value_or(""), s.isTombstone(), s.timestamp});
  }
  result.context = encodeContext(read_.merged().vv, read_.fastest());
  return result;
}

void ReadOp::send(size_t slot) {
  auto& address = map_->nodes()[read_.target(slot).node].address;
  auto sent = client_.pool().node(address).then(
      [self = kj::addRef(*this)](
          wire::Node::Client node) mutable -> kj::Promise<capnp::Response<wire::Node::GetResults>> {
        auto request = node.getRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        return request.send();
      });
  client_.callReplica(
      *this, slot, address, q_.replicaTimeout, kj::mv(sent),
      [self = kj::addRef(*this), slot,
       address](capnp::Response<wire::Node::GetResults>&& response) mutable {
        self->client_.noteVersion(response.getMapVersion());
        std::optional<Object> copy;
        if (response.getFound()) {
          KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                         copy = decodeObject(response.getObject(), self->client_.limits());
                       })) {
            self->fail(slot, ReplicaError::MALFORMED,
                       std::string("malformed answer: ") + e->getDescription().cStr());
            return;
          }
        }
        self->client_.pool().reportSuccess(address);
        self->apply(self->read_.onAnswer(slot, kj::mv(copy), self->health_));
      });
}

void ReadOp::fail(size_t slot, ReplicaError error, std::string detail) {
  apply(read_.onFailure(slot, error, kj::mv(detail), health_));
}

void ReadOp::repair(size_t slot) {
  // Off the caller's path: the answer has already been returned.
  auto& address = map_->nodes()[read_.target(slot).node].address;
  client_.addTask(client_.pool().node(address).then(
      [self = kj::addRef(*this)](wire::Node::Client node) mutable {
        auto request = node.replicateRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        encodeObject(self->read_.merged(), request.initObject());
        return request.send().ignoreResult();
      }));
}

// ---- WriteOp ----

WriteOp::WriteOp(AsyncClientImpl& client, MapSnapshot map, Key key, Versioning kind, Quorum q,
                 std::optional<std::string> value, DecodedContext context)
    : client_(client),
      map_(kj::mv(map)),
      key_(kj::mv(key)),
      kind_(kind),
      q_(q),
      value_(kj::mv(value)),
      context_(kj::mv(context)),
      health_(*map_, client.pool()),
      write_(
          *map_,
          map_->preferenceList(map_->partitionOf(keyHash(key_.ns, key_.key)), q.n, MAX_FALLBACKS),
          q.w, kind, context_.fastest,
          kind == Versioning::LAST_WRITE_WINS
              ? std::make_optional(lastWriteWinsObject(value_, wallClockMicros()))
              : std::nullopt) {}

kj::Promise<Result<Context>> WriteOp::run() {
  if (map_->nodes().size() < q_.w) {
    return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT,
                                 "W=" + std::to_string(q_.w) + " but the cluster has only " +
                                     std::to_string(map_->nodes().size()) + " nodes"));
  }
  auto paf = kj::newPromiseAndFulfiller<Result<Context>>();
  fulfiller_ = kj::mv(paf.fulfiller);
  apply(write_.start(health_));
  auto timeout = client_.timer().afterDelay(q_.timeout).then([self = kj::addRef(*this)]() mutable {
    self->write_.onDeadline();
    return self->result();
  });
  return paf.promise.exclusiveJoin(kj::mv(timeout));
}

void WriteOp::apply(WriteActions actions) {
  if (actions.coordinate) coordinate(*actions.coordinate);
  for (size_t slot : actions.replicate) replicateTo(slot);
  if (actions.decided) fulfiller_->fulfill(result());
}

Result<Context> WriteOp::result() {
  if (!write_.succeeded()) return toError(write_.failure(), *map_);
  return encodeContext(write_.object().vv, write_.coordinator());
}

void WriteOp::coordinate(size_t slot) {
  auto& address = map_->nodes()[write_.target(slot).node].address;
  auto sent = client_.pool().node(address).then(
      [self = kj::addRef(*this)](wire::Node::Client node) mutable
      -> kj::Promise<capnp::Response<wire::Node::CoordinatePutResults>> {
        auto request = node.coordinatePutRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        request.setKind(toWire(self->kind_));
        auto& vv = self->context_.vv;
        encodeVersionVector(vv, request.initContext(vv.size()));
        if (self->value_) {
          request.setValue(asData(*self->value_));
        } else {
          request.setTombstone(true);
        }
        return request.send();
      });
  client_.callReplica(
      *this, slot, address, q_.replicaTimeout, kj::mv(sent),
      [self = kj::addRef(*this), slot,
       address](capnp::Response<wire::Node::CoordinatePutResults>&& response) mutable {
        self->client_.noteVersion(response.getMapVersion());
        self->client_.pool().reportSuccess(address);
        std::optional<Object> object;
        KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                       object = decodeObject(response.getObject(), self->client_.limits());
                     })) {
          self->fail(slot, ReplicaError::MALFORMED,
                     std::string("malformed answer: ") + e->getDescription().cStr());
          return;
        }
        self->apply(self->write_.onCoordinated(slot, kj::mv(*object)));
      });
}

void WriteOp::replicateTo(size_t slot) {
  auto& address = map_->nodes()[write_.target(slot).node].address;
  auto sent = client_.pool().node(address).then(
      [self = kj::addRef(*this), slot](wire::Node::Client node) mutable
      -> kj::Promise<capnp::Response<wire::Node::ReplicateResults>> {
        auto request = node.replicateRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        encodeObject(self->write_.object(), request.initObject());
        request.setHintFor(self->write_.target(slot).hintFor);
        return request.send();
      });
  client_.callReplica(*this, slot, address, q_.replicaTimeout, kj::mv(sent),
                      [self = kj::addRef(*this), slot,
                       address](capnp::Response<wire::Node::ReplicateResults>&& response) mutable {
                        self->client_.noteVersion(response.getMapVersion());
                        self->client_.pool().reportSuccess(address);
                        self->apply(self->write_.onAck(slot));
                      });
}

void WriteOp::fail(size_t slot, ReplicaError error, std::string detail) {
  apply(write_.onFailure(slot, error, kj::mv(detail), health_));
}

}  // namespace

kj::Own<AsyncClient> AsyncClient::create(kj::Network& network, kj::Timer& timer,
                                         ClientOptions options) {
  return kj::heap<AsyncClientImpl>(network, timer, kj::mv(options));
}

}  // namespace dynkv
