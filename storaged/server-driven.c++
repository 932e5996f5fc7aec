#include "server-driven.h"

#include <kj/debug.h>
#include <kj/time.h>

#include "codec.h"
#include "read-context.h"

namespace dynkv::storaged {

namespace {

using Kind = wire::Node::CoordinationError::Kind;

int64_t nowMicros() {
  return (kj::systemPreciseCalendarClock().now() - kj::UNIX_EPOCH) / kj::MICROSECONDS;
}

void setError(wire::Node::CoordinationError::Builder out, Kind kind, const std::string& message) {
  // The message reads as the SDK's Error::what() ("unavailable: ..."): a caller sees the same
  // text whichever mode coordinated its request.
  const char* name = "unavailable";
  switch (kind) {
    case Kind::NONE:
      break;
    case Kind::INVALID_ARGUMENT:
      name = "invalid argument";
      break;
    case Kind::UNAVAILABLE:
      name = "unavailable";
      break;
    case Kind::TIMEOUT:
      name = "timeout";
      break;
    case Kind::REJECTED:
      name = "rejected";
      break;
  }
  out.setKind(kind);
  out.setMessage(std::string(name) + ": " + message);
}

void setError(wire::Node::CoordinationError::Builder out, const CallFailure& failure) {
  switch (failure.kind) {
    case FailureKind::UNAVAILABLE:
      return setError(out, Kind::UNAVAILABLE, failure.message);
    case FailureKind::REJECTED:
      return setError(out, Kind::REJECTED, failure.message);
    case FailureKind::INVALID_ARGUMENT:
      return setError(out, Kind::INVALID_ARGUMENT, failure.message);
    case FailureKind::TIMEOUT:
      return setError(out, Kind::TIMEOUT, failure.message);
  }
  setError(out, Kind::UNAVAILABLE, failure.message);
}

std::optional<std::string> quorumFrom(wire::Node::CallSettings::Reader call, Quorum& q) {
  // 0 means the default (Quorum's, which are the SDK's).
  if (call.getN() != 0) q.n = call.getN();
  if (call.getR() != 0) q.r = call.getR();
  if (call.getW() != 0) q.w = call.getW();
  int64_t millis = q.timeout / kj::MILLISECONDS;
  if (call.getTimeoutMillis() != 0) millis = call.getTimeoutMillis();
  if (auto problem = checkQuorum(q.n, q.r, q.w, millis)) return problem;
  q.timeout = millis * kj::MILLISECONDS;
  return std::nullopt;
}

template <typename T>
kj::Promise<Reply<T>> asReply(kj::Promise<T> answer) {
  return answer.then([](T&& value) -> Reply<T> { return kj::mv(value); });
}

}  // namespace

// ---- the replicas: this node's store, and the pool for the others ----

ServerDriven::NodeReplicas::NodeReplicas(VersionedStore& store, HintStore& hints,
                                         Membership& membership, TransferManager* transfers,
                                         BackgroundAdmission* admission, NodePool& pool)
    : self_(store.self().node),
      local_(store, hints, membership, transfers, admission),
      // A reply carrying a newer map tells membership to catch up, as any peer's does.
      remote_(pool, store.limits(),
              [&membership](uint64_t version) { membership.observeVersion(version); }) {}

StorageKey ServerDriven::NodeReplicas::storageKey(const ReplicaKey& key) {
  auto map = local_.observe(key.mapVersion);
  return local_.storageKey(*map, key.ns, key.key);
}

kj::Promise<Reply<std::optional<Object>>> ServerDriven::NodeReplicas::get(const NodeInfo& node,
                                                                          const ReplicaKey& key) {
  if (node.id != self_) return remote_.get(node, key);
  // evalNow: a request the replica refuses at once fails the promise, as a remote one would.
  return asReply(kj::evalNow([&]() { return local_.get(storageKey(key)); }));
}

kj::Promise<Reply<Object>> ServerDriven::NodeReplicas::coordinatePut(
    const NodeInfo& node, const ReplicaKey& key, const WriteContext& context,
    const std::optional<std::string>& value, uint64_t writeId) {
  if (node.id != self_) return remote_.coordinatePut(node, key, context, value, writeId);
  return asReply(kj::evalNow([&]() {
    return local_.coordinatePut(storageKey(key), context, value, nowMicros(), writeId);
  }));
}

kj::Promise<void> ServerDriven::NodeReplicas::replicate(const NodeInfo& node, const ReplicaKey& key,
                                                        const Object& object, uint64_t hintFor) {
  if (node.id != self_) return remote_.replicate(node, key, object, hintFor);
  return kj::evalNow([&]() { return local_.replicate(storageKey(key), object, hintFor); });
}

void ServerDriven::NodeReplicas::timedOut(const NodeInfo& node) {
  if (node.id != self_) remote_.timedOut(node);
}

bool ServerDriven::NodeReplicas::suspect(const NodeInfo& node) const {
  return node.id != self_ && remote_.suspect(node);
}

// ---- the calls ----

ServerDriven::ServerDriven(VersionedStore& store, HintStore& hints, Membership& membership,
                           TransferManager* transfers, NodePool& pool, kj::Timer& timer,
                           BackgroundAdmission* admission)
    : store_(store),
      membership_(membership),
      replicas_(store, hints, membership, transfers, admission, pool),
      driver_(replicas_, timer) {}

ServerDriven::~ServerDriven() noexcept(false) {}

std::optional<ServerDriven::Refusal> ServerDriven::prepare(
    wire::Node::CallSettings::Reader settings, wire::Key::Reader key, CoordinatedCall& call) {
  if (auto problem = quorumFrom(settings, call.quorum)) {
    return Refusal{Kind::INVALID_ARGUMENT, *problem};
  }
  call.map = membership_.current();
  if (call.map->empty()) {
    return Refusal{Kind::UNAVAILABLE, "this node is not in a ring yet: `dynkv admin join` adds it"};
  }
  call.ns = std::string(asStringView(key.getNamespace()));
  call.key = std::string(asStringView(key.getKey()));
  call.kind = fromWire(settings.getKind());
  if (auto problem = checkKey(store_.limits(), call.ns, call.key)) {
    return Refusal{Kind::INVALID_ARGUMENT, *problem};
  }
  return std::nullopt;
}

kj::Promise<void> ServerDriven::coordinateGet(CoordinateGetContext context) {
  auto params = context.getParams();
  CoordinatedCall call;
  if (auto refusal = prepare(params.getCall(), params.getKey(), call)) {
    setError(context.getResults().initError(), refusal->kind, refusal->message);
    return kj::READY_NOW;
  }
  return driver_.read(kj::mv(call)).then([context](ReadOutcome&& outcome) mutable {
    auto results = context.getResults();
    if (outcome.failure) {
      setError(results.initError(), *outcome.failure);
      return;
    }
    auto merged = distinctWrites(outcome.merged);
    auto siblings = results.initSiblings(merged.size());
    for (size_t i = 0; i < merged.size(); i++) {
      siblings[i].setValue(asData(merged[i].value.value_or("")));
      siblings[i].setDeleted(merged[i].isTombstone());
      siblings[i].setTimestamp(merged[i].timestamp);
    }
    auto bytes = encodeReadContext(contextOf(outcome.merged, outcome.fastest));
    results.setContext(asData(bytes));
  });
}

kj::Promise<void> ServerDriven::coordinateWrite(CoordinateWriteContext context) {
  auto params = context.getParams();
  auto results = context.getResults();
  CoordinatedCall call;
  if (auto refusal = prepare(params.getCall(), params.getKey(), call)) {
    setError(results.initError(), refusal->kind, refusal->message);
    return kj::READY_NOW;
  }
  Write write;
  if (auto problem = decodeReadContext(asStringView(params.getContext()), write.context)) {
    setError(results.initError(), Kind::INVALID_ARGUMENT, *problem);
    return kj::READY_NOW;
  }
  if (!params.getTombstone()) {
    auto value = asStringView(params.getValue());
    if (auto problem = checkValue(store_.limits(), value)) {
      setError(results.initError(), Kind::INVALID_ARGUMENT, *problem);
      return kj::READY_NOW;
    }
    write.value = std::string(value);
  }
  write.nowMicros = nowMicros();
  return driver_.write(kj::mv(call), kj::mv(write)).then([context](WriteOutcome&& outcome) mutable {
    auto results = context.getResults();
    if (outcome.failure) {
      setError(results.initError(), *outcome.failure);
      return;
    }
    auto bytes = encodeReadContext(contextOf(outcome.object, outcome.coordinator));
    results.setContext(asData(bytes));
  });
}

}  // namespace dynkv::storaged
