// The client-driven coordinator (DESIGN.md, "Request paths"): routing by preference list,
// the read and write quorums, sloppy quorum with hinted fallbacks, and read repair. The
// state machines are in quorum.h; this file is the RPC shell around them.
#include <dynkv/async-client.h>

#include <algorithm>
#include <kj/debug.h>
#include <kj/time.h>
#include <memory>
#include <random>

#include "codec.h"
#include "context.h"
#include "hash.h"
#include "node-pool.h"
#include "quorum.h"

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

struct Target {
  uint16_t node;         // index into the map's nodes
  uint64_t hintFor = 0;  // the primary a fallback stands in for; 0 for a primary
};

class Router {
  // Picks a request's nodes from the preference list: primaries first, a suspected primary
  // replaced by the next healthy fallback (sloppy quorum), further fallbacks on demand.
 public:
  Router(const PartitionMap& map, const PreferenceList& pref, NodePool& pool)
      : map_(map), pref_(pref), pool_(pool), nextFallback_(pref.primaries) {}

  std::vector<Target> initial() {
    std::vector<Target> targets;
    for (uint32_t i = 0; i < pref_.primaries; i++) {
      uint16_t primary = pref_.nodes[i];
      if (suspect(primary)) {
        KJ_IF_MAYBE(fallback, takeFallback(map_.nodes()[primary].id)) {
          targets.push_back(*fallback);
          continue;
        }
      }
      targets.push_back(Target{primary, 0});
    }
    return targets;
  }

  kj::Maybe<Target> takeFallback(uint64_t standingInFor) {
    // The next healthy fallback; a suspected one only when no healthy one is left.
    for (size_t i = nextFallback_; i < pref_.nodes.size(); i++) {
      if (!suspect(pref_.nodes[i])) {
        std::swap(pref_.nodes[i], pref_.nodes[nextFallback_]);
        return Target{pref_.nodes[nextFallback_++], standingInFor};
      }
    }
    if (nextFallback_ < pref_.nodes.size()) {
      return Target{pref_.nodes[nextFallback_++], standingInFor};
    }
    return nullptr;
  }

 private:
  const PartitionMap& map_;
  PreferenceList pref_;
  NodePool& pool_;
  size_t nextFallback_;

  bool suspect(uint16_t node) { return pool_.isSuspect(map_.nodes()[node].address); }
};

Error quorumError(const std::vector<ReplicaOutcome>& outcomes, const std::vector<Target>& targets,
                  const PartitionMap& map, uint32_t got, uint32_t required, const char* what) {
  std::vector<ReplicaFailure> failures;
  bool refused = false;
  for (size_t i = 0; i < outcomes.size(); i++) {
    if (outcomes[i].state != ReplicaOutcome::State::FAILED) continue;
    failures.push_back(ReplicaFailure{map.nodes()[targets[i].node].address, outcomes[i].failure});
    refused |= outcomes[i].refused;
  }
  // A refusal that names a limit is the caller's mistake, whoever noticed it.
  bool invalid = !failures.empty();
  for (auto& f : failures) invalid &= f.reason.find("invalid argument") != std::string::npos;
  if (invalid) {
    return Error(ErrorKind::INVALID_ARGUMENT, failures.front().reason, kj::mv(failures), got,
                 required);
  }
  std::string message = std::string(what) + ": " + std::to_string(got) + " of " +
                        std::to_string(required) + " required replicas answered";
  for (auto& f : failures) message += "; " + f.node + ": " + f.reason;
  return Error(refused ? ErrorKind::REJECTED : ErrorKind::UNAVAILABLE, message, kj::mv(failures),
               got, required);
}

class AsyncClientImpl;

class ReadOp final : public kj::Refcounted {
 public:
  ReadOp(AsyncClientImpl& client, MapSnapshot map, Key key, NamespaceKind kind, Quorum q);
  kj::Promise<Result<GetResult>> run();
  Result<GetResult> timedOut();

 private:
  AsyncClientImpl& client_;
  MapSnapshot map_;
  Key key_;
  NamespaceKind kind_;
  Quorum q_;
  kj::Maybe<Router> router_;
  std::vector<Target> targets_;
  ReadQuorum quorum_;
  uint64_t fastest_ = 0;
  bool done_ = false;
  bool repaired_ = false;
  kj::Own<kj::PromiseFulfiller<Result<GetResult>>> fulfiller_;

  void send(size_t i);
  void onAnswer(size_t i, capnp::Response<wire::Node::GetResults>&& response);
  void onFailure(size_t i, std::string reason, bool refused);
  void check();
  void readRepair();
};

class WriteOp final : public kj::Refcounted {
 public:
  WriteOp(AsyncClientImpl& client, MapSnapshot map, Key key, NamespaceKind kind, Quorum q,
          std::optional<std::string> value, DecodedContext context);
  kj::Promise<Result<Context>> run();
  Result<Context> timedOut();

 private:
  AsyncClientImpl& client_;
  MapSnapshot map_;
  Key key_;
  NamespaceKind kind_;
  Quorum q_;
  std::optional<std::string> value_;
  DecodedContext context_;
  kj::Maybe<Router> router_;
  std::vector<Target> targets_;
  WriteQuorum quorum_;
  std::optional<Object> object_;     // the version being replicated, once minted
  std::vector<size_t> triedAsCoordinator_;
  uint64_t coordinator_ = 0;
  bool done_ = false;
  kj::Own<kj::PromiseFulfiller<Result<Context>>> fulfiller_;

  void coordinate(size_t i);
  kj::Maybe<size_t> nextCoordinator() const;
  void replicateTo(size_t i);
  void substitute(size_t failed);
  void onFailure(size_t i, const kj::Exception& e);
  void check();
};

class AsyncClientImpl final : public AsyncClient, private kj::TaskSet::ErrorHandler {
 public:
  AsyncClientImpl(kj::Network& network, kj::Timer& timer, ClientOptions options)
      : options_(kj::mv(options)),
        timer_(timer),
        pool_(network, timer, options_.cluster, options_.secret, limits_.maxValueBytes),
        rng_(std::random_device{}()),
        tasks_(*this) {
    tasks_.add(refreshLoop());
  }

  kj::Promise<Result<GetResult>> get(Key key, CallOptions options) override {
    Quorum q;
    KJ_IF_MAYBE(error, quorumFor(options, q)) { return Result<GetResult>(kj::mv(*error)); }
    auto kind = kindOf(key.ns);
    auto deadline = timer_.now() + q.timeout;
    return withView<GetResult>(deadline, [this, key = kj::mv(key), kind, q](
                                             MapSnapshot map) mutable
                               -> kj::Promise<Result<GetResult>> {
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

  void noteVersion(uint64_t version) {
    // A node answered with a newer map: fetch it now rather than at the next periodic pull.
    if (map_ && version > map_->version()) tasks_.add(refresh());
  }

 private:
  ClientOptions options_;
  Limits limits_;
  kj::Timer& timer_;
  NodePool pool_;
  MapSnapshot map_;
  std::mt19937_64 rng_;
  kj::Maybe<kj::ForkedPromise<void>> refreshing_;
  bool refreshInFlight_ = false;
  kj::TaskSet tasks_;

  void taskFailed(kj::Exception&& exception) override {
    KJ_LOG(INFO, "background task failed", exception);
  }

  NamespaceKind kindOf(const std::string& ns) const {
    auto it = options_.namespaces.find(ns);
    return it == options_.namespaces.end() ? NamespaceKind::VECTOR_CLOCK : it->second;
  }

  kj::Maybe<Error> quorumFor(const CallOptions& options, Quorum& q) const {
    q.n = options.n.value_or(options_.n);
    q.r = options.r.value_or(options_.r);
    q.w = options.w.value_or(options_.w);
    auto ms = options.timeout.value_or(options_.timeout).count();
    if (q.n < 1 || q.r < 1 || q.w < 1 || q.r > q.n || q.w > q.n) {
      return Error(ErrorKind::INVALID_ARGUMENT,
                   "quorum must satisfy 1 <= R <= N and 1 <= W <= N (got N=" +
                       std::to_string(q.n) + " R=" + std::to_string(q.r) +
                       " W=" + std::to_string(q.w) + ")");
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
    KJ_IF_MAYBE(error, quorumFor(options, q)) { return Result<Context>(kj::mv(*error)); }
    DecodedContext decoded;
    try {
      decoded = decodeContext(context);
    } catch (const Error& e) {
      return Result<Context>(e);
    }
    auto kind = kindOf(key.ns);
    auto deadline = timer_.now() + q.timeout;
    return withView<Context>(
        deadline, [this, key = kj::mv(key), kind, q, value = kj::mv(value),
                   decoded = kj::mv(decoded)](MapSnapshot map) mutable
        -> kj::Promise<Result<Context>> {
          // Checked against the limits the cluster announced with its view, not our defaults.
          if (auto problem = checkKey(limits_, key.ns, key.key)) {
            return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT, *problem));
          }
          if (value) {
            if (auto problem = checkValue(limits_, *value)) {
              return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT, *problem));
            }
          }
          auto op = kj::refcounted<WriteOp>(*this, kj::mv(map), kj::mv(key), kind, q,
                                            kj::mv(value), kj::mv(decoded));
          return op->run();
        });
  }

  template <typename T, typename Func>
  kj::Promise<Result<T>> withView(kj::TimePoint deadline, Func&& func) {
    // Runs func(map) with the current view (fetching one first if there is none), bounded
    // by the call's deadline.
    kj::Promise<MapSnapshot> view = map_ ? kj::Promise<MapSnapshot>(map_)
                                         : refresh().then([this]() { return map_; });
    auto work = view.then(
        [func = kj::fwd<Func>(func)](MapSnapshot map) mutable -> kj::Promise<Result<T>> {
          return func(kj::mv(map));
        },
        [](kj::Exception&& e) -> kj::Promise<Result<T>> {
          return Result<T>(Error(ErrorKind::UNAVAILABLE,
                                 std::string("cannot fetch the cluster view: ") +
                                     e.getDescription().cStr()));
        });
    auto timeout = timer_.atTime(deadline).then([]() -> Result<T> {
      return Error(ErrorKind::TIMEOUT, "deadline passed before the request completed");
    });
    return work.exclusiveJoin(kj::mv(timeout));
  }

  kj::Promise<void> refresh() {
    if (refreshInFlight_) {
      KJ_IF_MAYBE(f, refreshing_) { return f->addBranch(); }
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
      return pull.catch_([](kj::Exception&& e) {
        KJ_LOG(INFO, "periodic view refresh failed", e);
      }).then([this]() { return refreshLoop(); });
    });
  }
};

// ---- ReadOp ----

ReadOp::ReadOp(AsyncClientImpl& client, MapSnapshot map, Key key, NamespaceKind kind, Quorum q)
    : client_(client), map_(kj::mv(map)), key_(kj::mv(key)), kind_(kind), q_(q),
      quorum_(q.r, 0) {}

kj::Promise<Result<GetResult>> ReadOp::run() {
  auto paf = kj::newPromiseAndFulfiller<Result<GetResult>>();
  fulfiller_ = kj::mv(paf.fulfiller);
  if (map_->nodes().size() < q_.r) {
    return Result<GetResult>(Error(ErrorKind::INVALID_ARGUMENT,
                                   "R=" + std::to_string(q_.r) + " but the cluster has only " +
                                       std::to_string(map_->nodes().size()) + " nodes"));
  }
  auto partition = map_->partitionOf(keyHash(key_.ns, key_.key));
  auto& router = router_.emplace(*map_, map_->preferenceList(partition, q_.n, MAX_FALLBACKS),
                                 client_.pool());
  targets_ = router.initial();
  quorum_ = ReadQuorum(q_.r, targets_.size());
  for (size_t i = 0; i < targets_.size(); i++) send(i);
  auto timeout = client_.timer().afterDelay(q_.timeout).then(
      [self = kj::addRef(*this)]() mutable { return self->timedOut(); });
  return paf.promise.exclusiveJoin(kj::mv(timeout));
}

void ReadOp::send(size_t i) {
  auto& node = map_->nodes()[targets_[i].node];
  auto sent = client_.pool().node(node.address).then(
      [self = kj::addRef(*this)](wire::Node::Client node) mutable
      -> kj::Promise<capnp::Response<wire::Node::GetResults>> {
        auto request = node.getRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        return request.send();
      });
  auto call = client_.pool().track(node.address, kj::mv(sent)).then(
      [self = kj::addRef(*this), i](capnp::Response<wire::Node::GetResults>&& response) mutable {
        self->onAnswer(i, kj::mv(response));
      },
      [self = kj::addRef(*this), i](kj::Exception&& e) mutable {
        self->client_.pool().reportFailure(self->map_->nodes()[self->targets_[i].node].address, e);
        self->onFailure(i, e.getDescription().cStr(), e.getType() == kj::Exception::Type::FAILED);
      });
  auto slow = client_.timer().afterDelay(q_.replicaTimeout).then([self = kj::addRef(*this), i]() mutable {
    auto& address = self->map_->nodes()[self->targets_[i].node].address;
    self->client_.pool().reportTimeout(address);
    self->onFailure(i, "no answer within the replica timeout", false);
  });
  client_.addTask(call.exclusiveJoin(kj::mv(slow)));
}

void ReadOp::onAnswer(size_t i, capnp::Response<wire::Node::GetResults>&& response) {
  client_.noteVersion(response.getMapVersion());
  std::optional<Object> object;
  if (response.getFound()) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
                  object = decodeObject(response.getObject(), client_.limits());
                })) {
      onFailure(i, std::string("malformed answer: ") + e->getDescription().cStr(), true);
      return;
    }
    if (object->kind != kind_ && !object->empty()) {
      onFailure(i, "namespace kind mismatch: the stored object has the other versioning", true);
      return;
    }
  }
  auto& node = map_->nodes()[targets_[i].node];
  client_.pool().reportSuccess(node.address);
  if (!object && targets_[i].hintFor != 0) {
    // A fallback holding no copy (no hint) knows nothing of the key: counting its "not
    // found" toward R could hide an acknowledged write that the owners it stands in for
    // hold. It is no answer; the read waits for an owner (or another fallback) instead.
    quorum_.failed(i, "fallback holds no copy of the key", false);
    check();
    return;
  }
  if (fastest_ == 0) fastest_ = node.id;
  quorum_.answered(i, kj::mv(object));
  check();
}

void ReadOp::onFailure(size_t i, std::string reason, bool refused) {
  quorum_.failed(i, kj::mv(reason), refused);
  if (!done_ && !refused) {
    KJ_IF_MAYBE(router, router_) {
      KJ_IF_MAYBE(fallback, router->takeFallback(targets_[i].hintFor != 0
                                                     ? targets_[i].hintFor
                                                     : map_->nodes()[targets_[i].node].id)) {
        targets_.push_back(*fallback);
        send(quorum_.addReplica());
      }
    }
  }
  check();
}

void ReadOp::check() {
  if (!done_ && quorum_.succeeded()) {
    done_ = true;
    GetResult result;
    for (auto& s : quorum_.merged().siblings) {
      result.siblings.push_back(Version{s.value.value_or(""), s.isTombstone(), s.timestamp});
    }
    result.context = encodeContext(quorum_.merged().vv, fastest_);
    fulfiller_->fulfill(kj::mv(result));
  } else if (!done_ && quorum_.failedForGood()) {
    done_ = true;
    fulfiller_->fulfill(quorumError(quorum_.replicas(), targets_, *map_, quorum_.answers(), q_.r,
                                    "read quorum not reached"));
  }
  if (quorum_.settled() && quorum_.succeeded() && !repaired_) readRepair();
}

void ReadOp::readRepair() {
  // Off the caller's path: the answer has already been returned.
  repaired_ = true;
  for (size_t i : quorum_.staleReplicas()) {
    if (targets_[i].hintFor != 0) continue;  // fallbacks are not owners
    auto& node = map_->nodes()[targets_[i].node];
    client_.addTask(client_.pool().node(node.address).then(
        [self = kj::addRef(*this)](wire::Node::Client node) mutable {
          auto request = node.replicateRequest();
          request.setMapVersion(self->map_->version());
          auto key = request.initKey();
          key.setNamespace(asData(self->key_.ns));
          key.setKey(asData(self->key_.key));
          encodeObject(self->quorum_.merged(), request.initObject());
          return request.send().ignoreResult();
        }));
  }
}

Result<GetResult> ReadOp::timedOut() {
  done_ = true;
  auto error = quorumError(quorum_.replicas(), targets_, *map_, quorum_.answers(), q_.r,
                           "read timed out");
  return Error(ErrorKind::TIMEOUT, error.what(), error.failedReplicas(), error.acks(),
               error.required());
}

// ---- WriteOp ----

WriteOp::WriteOp(AsyncClientImpl& client, MapSnapshot map, Key key, NamespaceKind kind, Quorum q,
                 std::optional<std::string> value, DecodedContext context)
    : client_(client), map_(kj::mv(map)), key_(kj::mv(key)), kind_(kind), q_(q),
      value_(kj::mv(value)), context_(kj::mv(context)), quorum_(q.w, 0) {}

kj::Promise<Result<Context>> WriteOp::run() {
  auto paf = kj::newPromiseAndFulfiller<Result<Context>>();
  fulfiller_ = kj::mv(paf.fulfiller);
  if (map_->nodes().size() < q_.w) {
    return Result<Context>(Error(ErrorKind::INVALID_ARGUMENT,
                                 "W=" + std::to_string(q_.w) + " but the cluster has only " +
                                     std::to_string(map_->nodes().size()) + " nodes"));
  }
  auto partition = map_->partitionOf(keyHash(key_.ns, key_.key));
  auto& router = router_.emplace(*map_, map_->preferenceList(partition, q_.n, MAX_FALLBACKS),
                                 client_.pool());
  targets_ = router.initial();
  quorum_ = WriteQuorum(q_.w, targets_.size());

  if (kind_ == NamespaceKind::LAST_WRITE_WINS) {
    // The client coordinates last-write-wins writes itself: one round trip to all N.
    object_ = lastWriteWinsObject(value_, wallClockMicros());
    for (size_t i = 0; i < targets_.size(); i++) replicateTo(i);
  } else {
    // The coordinator is the replica that answered this key's last read first (the paper's
    // §6.4 optimisation), else the first healthy node of the preference list.
    // A fallback never coordinates while an owner can: it would keep the version as its own
    // data instead of as a hint for the owner, and never hand it off.
    KJ_IF_MAYBE(chosen, nextCoordinator()) {
      coordinate(*chosen);
    } else {
      coordinate(0);
    }
  }
  auto timeout = client_.timer().afterDelay(q_.timeout).then(
      [self = kj::addRef(*this)]() mutable { return self->timedOut(); });
  return paf.promise.exclusiveJoin(kj::mv(timeout));
}

void WriteOp::coordinate(size_t i) {
  triedAsCoordinator_.push_back(i);
  auto& node = map_->nodes()[targets_[i].node];
  auto sent = client_.pool().node(node.address).then(
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
  auto call = client_.pool().track(node.address, kj::mv(sent)).then(
      [self = kj::addRef(*this),
       i](capnp::Response<wire::Node::CoordinatePutResults>&& response) mutable {
        auto& node = self->map_->nodes()[self->targets_[i].node];
        self->client_.noteVersion(response.getMapVersion());
        self->client_.pool().reportSuccess(node.address);
        self->object_ = decodeObject(response.getObject(), self->client_.limits());
        self->coordinator_ = node.id;
        self->quorum_.acked(i);
        // Replicate the new version to every other replica, including those that were
        // waiting while the coordinator was found.
        for (size_t j = 0; j < self->targets_.size(); j++) {
          if (j != i && self->quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING) {
            self->replicateTo(j);
          }
        }
        self->check();
      },
      [self = kj::addRef(*this), i](kj::Exception&& e) mutable { self->onFailure(i, e); });
  auto slow = client_.timer().afterDelay(q_.replicaTimeout).then([self = kj::addRef(*this), i]() mutable {
    auto& address = self->map_->nodes()[self->targets_[i].node].address;
    self->client_.pool().reportTimeout(address);
    self->onFailure(i, KJ_EXCEPTION(OVERLOADED, "no answer within the replica timeout"));
  });
  client_.addTask(call.exclusiveJoin(kj::mv(slow)));
}

void WriteOp::replicateTo(size_t i) {
  auto& node = map_->nodes()[targets_[i].node];
  auto sent = client_.pool().node(node.address).then(
      [self = kj::addRef(*this), i](wire::Node::Client node) mutable
      -> kj::Promise<capnp::Response<wire::Node::ReplicateResults>> {
        auto request = node.replicateRequest();
        request.setMapVersion(self->map_->version());
        auto key = request.initKey();
        key.setNamespace(asData(self->key_.ns));
        key.setKey(asData(self->key_.key));
        encodeObject(*self->object_, request.initObject());
        request.setHintFor(self->targets_[i].hintFor);
        return request.send();
      });
  auto call = client_.pool().track(node.address, kj::mv(sent)).then(
      [self = kj::addRef(*this), i](capnp::Response<wire::Node::ReplicateResults>&& response) mutable {
        self->client_.noteVersion(response.getMapVersion());
        self->client_.pool().reportSuccess(self->map_->nodes()[self->targets_[i].node].address);
        self->quorum_.acked(i);
        self->check();
      },
      [self = kj::addRef(*this), i](kj::Exception&& e) mutable { self->onFailure(i, e); });
  auto slow = client_.timer().afterDelay(q_.replicaTimeout).then([self = kj::addRef(*this), i]() mutable {
    auto& address = self->map_->nodes()[self->targets_[i].node].address;
    self->client_.pool().reportTimeout(address);
    self->onFailure(i, KJ_EXCEPTION(OVERLOADED, "no answer within the replica timeout"));
  });
  client_.addTask(call.exclusiveJoin(kj::mv(slow)));
}

void WriteOp::onFailure(size_t i, const kj::Exception& e) {
  auto& node = map_->nodes()[targets_[i].node];
  bool refused = e.getType() == kj::Exception::Type::FAILED;
  client_.pool().reportFailure(node.address, e);
  quorum_.failed(i, e.getDescription().cStr(), refused);
  if (!done_ && !refused) substitute(i);

  if (!object_ && !done_ && !refused) {
    // The coordinator failed before minting: the next untried replica coordinates instead.
    KJ_IF_MAYBE(next, nextCoordinator()) { coordinate(*next); }
  }
  check();
}

kj::Maybe<size_t> WriteOp::nextCoordinator() const {
  // The preceding read's fastest replica if it is an owner still in play, else the first
  // such owner, else (every owner has failed) the first untried fallback.
  auto usable = [&](size_t j) {
    return std::find(triedAsCoordinator_.begin(), triedAsCoordinator_.end(), j) ==
               triedAsCoordinator_.end() &&
           quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING;
  };
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j) && targets_[j].hintFor == 0 &&
        map_->nodes()[targets_[j].node].id == context_.fastest) {
      return j;
    }
  }
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j) && targets_[j].hintFor == 0) return j;
  }
  for (size_t j = 0; j < targets_.size(); j++) {
    if (usable(j)) return j;
  }
  return nullptr;
}

void WriteOp::substitute(size_t failed) {
  // Sloppy quorum: the next fallback takes the write as a hint for the failed owner.
  KJ_IF_MAYBE(router, router_) {
    uint64_t owner = targets_[failed].hintFor != 0 ? targets_[failed].hintFor
                                                   : map_->nodes()[targets_[failed].node].id;
    KJ_IF_MAYBE(fallback, router->takeFallback(owner)) {
      targets_.push_back(*fallback);
      size_t i = quorum_.addReplica();
      if (object_) replicateTo(i);
    }
  }
}

void WriteOp::check() {
  if (!done_ && quorum_.succeeded()) {
    done_ = true;
    fulfiller_->fulfill(encodeContext(object_->vv, coordinator_));
  } else if (!done_ && quorum_.failedForGood()) {
    done_ = true;
    fulfiller_->fulfill(quorumError(quorum_.replicas(), targets_, *map_, quorum_.acks(), q_.w,
                                    "write quorum not reached"));
  } else if (!done_ && !object_ && kind_ == NamespaceKind::VECTOR_CLOCK) {
    // Every candidate coordinator failed or refused: nothing was written.
    bool anyCoordinating = false;
    for (size_t j : triedAsCoordinator_) {
      anyCoordinating |= quorum_.replicas()[j].state == ReplicaOutcome::State::PENDING;
    }
    if (!anyCoordinating) {
      done_ = true;
      fulfiller_->fulfill(quorumError(quorum_.replicas(), targets_, *map_, 0, q_.w,
                                      "no replica could coordinate the write"));
    }
  }
}

Result<Context> WriteOp::timedOut() {
  done_ = true;
  auto error = quorumError(quorum_.replicas(), targets_, *map_, quorum_.acks(), q_.w,
                           "write timed out");
  return Error(ErrorKind::TIMEOUT, error.what(), error.failedReplicas(), error.acks(),
               error.required());
}

}  // namespace

kj::Own<AsyncClient> AsyncClient::create(kj::Network& network, kj::Timer& timer,
                                         ClientOptions options) {
  return kj::heap<AsyncClientImpl>(network, timer, kj::mv(options));
}

}  // namespace dynkv
