// The client-driven coordinator's shell (DESIGN.md, "Request paths"): the decisions of a get
// and a put (routing, quorums, sloppy quorum with hinted fallbacks, read repair) are the pure
// ReadCoordinator and WriteCoordinator of common/coordinator/, run against the replicas by
// the RequestDriver of common/net/. This file keeps the cluster's view, checks each call
// against the limits, and converts between the public types and the core's.
#include <dynkv/async-client.h>
#include <kj/debug.h>
#include <kj/time.h>

#include <algorithm>
#include <memory>
#include <random>

#include "codec.h"
#include "context.h"
#include "node-pool.h"
#include "replicas.h"
#include "request-driver.h"
#include "tls.h"

namespace dynkv {

namespace {

constexpr auto VIEW_REFRESH_INTERVAL = 10 * kj::SECONDS;

int64_t wallClockMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
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

Result<GetResult> toGetResult(ReadOutcome outcome, const PartitionMap& map) {
  if (outcome.failure) return toError(*outcome.failure, map);
  GetResult result;
  for (auto& s : distinctWrites(outcome.merged)) {
    result.siblings.push_back(Version{s.value.value_or(""), s.isTombstone(), s.timestamp});
  }
  result.context = encodeContext(contextOf(outcome.merged, outcome.fastest));
  return result;
}

Result<Context> toContext(WriteOutcome outcome, const PartitionMap& map) {
  if (outcome.failure) return toError(*outcome.failure, map);
  return encodeContext(contextOf(outcome.object, outcome.coordinator));
}

kj::Own<Tls> tlsFor(const ClientOptions& options) {
  TlsFiles files{options.tlsCa, options.tlsCert, options.tlsKey};
  if (!files.any()) return {};
  return kj::heap<Tls>(files);
}

class AsyncClientImpl final : public AsyncClient, private kj::TaskSet::ErrorHandler {
 public:
  AsyncClientImpl(kj::Network& network, kj::Timer& timer, ClientOptions options)
      : options_(kj::mv(options)),
        timer_(timer),
        tls_(tlsFor(options_)),
        pool_(network, timer, detector_, options_.cluster, options_.secret, limits_.maxValueBytes),
        replicas_(pool_, limits_, [this](uint64_t version) { noteVersion(version); }),
        driver_(replicas_, timer),
        rng_(std::random_device{}()),
        tasks_(*this) {
    if (tls_.get() != nullptr) pool_.useTls(tls_->context());
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
          return driver_.read(CoordinatedCall{map, kj::mv(key.ns), kj::mv(key.key), kind, q})
              .then([map](ReadOutcome&& outcome) { return toGetResult(kj::mv(outcome), *map); });
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

 private:
  ClientOptions options_;
  Limits limits_;  // as the cluster announced them with its view
  kj::Timer& timer_;
  FailureDetector detector_;  // this client's: it has no heartbeats, only its calls
  kj::Own<Tls> tls_;          // null: plain TCP; before the pool, so that it outlives it
  NodePool pool_;
  PooledReplicas replicas_;
  RequestDriver driver_;
  MapSnapshot map_;
  std::mt19937_64 rng_;
  kj::Maybe<kj::ForkedPromise<void>> refreshing_;
  bool refreshInFlight_ = false;
  kj::TaskSet tasks_;

  void taskFailed(kj::Exception&& exception) override {
    KJ_LOG(INFO, "background task failed", exception);
  }

  void noteVersion(uint64_t version) {
    // A node answered with a newer map: fetch it now rather than at the next periodic pull.
    if (map_ && version > map_->version()) tasks_.add(refresh());
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
    if (auto problem = checkQuorum(q.n, q.r, q.w, ms)) {
      return Error(ErrorKind::INVALID_ARGUMENT, *problem);
    }
    q.timeout = ms * kj::MILLISECONDS;
    return nullptr;
  }

  kj::Promise<Result<Context>> write(Key key, std::optional<std::string> value, Context context,
                                     const CallOptions& options) {
    Quorum q;
    KJ_IF_MAYBE (error, quorumFor(options, q)) {
      return Result<Context>(kj::mv(*error));
    }
    ReadContext decoded;
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
          CoordinatedCall call{map, kj::mv(key.ns), kj::mv(key.key), kind, q};
          Write write{kj::mv(value), kj::mv(decoded), wallClockMicros()};
          return driver_.write(kj::mv(call), kj::mv(write))
              .then([map](WriteOutcome&& outcome) { return toContext(kj::mv(outcome), *map); });
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

}  // namespace

kj::Own<AsyncClient> AsyncClient::create(kj::Network& network, kj::Timer& timer,
                                         ClientOptions options) {
  return kj::heap<AsyncClientImpl>(network, timer, kj::mv(options));
}

}  // namespace dynkv
