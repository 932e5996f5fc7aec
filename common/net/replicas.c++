#include "replicas.h"

#include <kj/debug.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "codec.h"
#include "request-age.h"

namespace dynkv {

namespace {

void setKey(wire::Key::Builder out, const ReplicaKey& key) {
  out.setNamespace(asData(key.ns));
  out.setKey(asData(key.key));
}

ReplicaFailed malformed(const kj::Exception& e) {
  return ReplicaFailed{ReplicaError::MALFORMED,
                       std::string("malformed answer: ") + e.getDescription().cStr()};
}

}  // namespace

ReplicaError classify(const kj::Exception& e) {
  // A node's refusal arrives as a FAILED exception; the wire carries no error type, so a
  // limit is recognised by the words the service puts first ("invalid argument",
  // storaged/local-replica.c++).
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

PooledReplicas::PooledReplicas(NodePool& pool, const Limits& limits,
                               kj::Function<void(uint64_t)> noteVersion)
    : pool_(pool), limits_(limits), noteVersion_(kj::mv(noteVersion)) {}

template <typename Response, typename OnAnswer>
auto PooledReplicas::call(const std::string& address, kj::Promise<Response> sent,
                          OnAnswer onAnswer) {
  // The reply goes to onAnswer; a failure is reported to the pool (a broken connection is
  // dropped, the node suspected) and passed on.
  using Result = decltype(onAnswer(std::declval<Response>()));
  return pool_.track(address, kj::mv(sent))
      .then(kj::mv(onAnswer), [this, address](kj::Exception&& e) -> Result {
        pool_.reportFailure(address, e);
        kj::throwFatalException(kj::mv(e));
      });
}

kj::Promise<Reply<std::optional<Object>>> PooledReplicas::get(const NodeInfo& node,
                                                              const ReplicaKey& key) {
  using Response = capnp::Response<wire::Node::GetResults>;
  auto sent = pool_.node(node.address).then([&key](wire::Node::Client client) {
    auto request = client.getRequest();
    request.setMapVersion(key.mapVersion);
    setKey(request.initKey(), key);
    return request.send();
  });
  return call(node.address, kj::mv(sent),
              [this, address = node.address](Response&& response) -> Reply<std::optional<Object>> {
                noteVersion_(response.getMapVersion());
                std::optional<Object> copy;
                if (response.getFound()) {
                  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                                 copy = decodeObject(response.getObject(), limits_);
                               })) {
                    return malformed(*e);
                  }
                }
                pool_.reportSuccess(address);
                return copy;
              });
}

kj::Promise<Reply<Object>> PooledReplicas::coordinatePut(const NodeInfo& node,
                                                         const ReplicaKey& key,
                                                         const WriteContext& context,
                                                         const std::optional<std::string>& value,
                                                         uint64_t writeId) {
  using Response = capnp::Response<wire::Node::CoordinatePutResults>;
  auto sent = pool_.node(node.address).then([&key, &context, &value,
                                             writeId](wire::Node::Client client) {
    auto request = client.coordinatePutRequest();
    request.setMapVersion(key.mapVersion);
    setKey(request.initKey(), key);
    request.setKind(wire::NamespaceKind::VECTOR_CLOCK);
    request.setSentAtMicros(monotonicMicros());
    request.setPatienceMicros(uint64_t(std::max<int64_t>(0, key.patienceMicros)));
    encodeVersionVector(context.vv, request.initContext(context.vv.size()));
    encodeWriteIds(context.writeIds, request.initSupersedes(context.writeIds.size()));
    request.setWriteId(writeId);
    if (value) {
      request.setValue(asData(*value));
    } else {
      request.setTombstone(true);
    }
    return request.send();
  });
  return call(node.address, kj::mv(sent),
              [this, address = node.address](Response&& response) -> Reply<Object> {
                noteVersion_(response.getMapVersion());
                pool_.reportSuccess(address);
                Object object;
                KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                               object = decodeObject(response.getObject(), limits_);
                             })) {
                  return malformed(*e);
                }
                return object;
              });
}

kj::Promise<void> PooledReplicas::replicate(const NodeInfo& node, const ReplicaKey& key,
                                            const Object& object, uint64_t hintFor) {
  using Response = capnp::Response<wire::Node::ReplicateResults>;
  auto sent = pool_.node(node.address).then([&key, &object, hintFor](wire::Node::Client client) {
    auto request = client.replicateRequest();
    request.setMapVersion(key.mapVersion);
    setKey(request.initKey(), key);
    encodeObject(object, request.initObject());
    request.setHintFor(hintFor);
    request.setSentAtMicros(monotonicMicros());
    request.setPatienceMicros(uint64_t(std::max<int64_t>(0, key.patienceMicros)));
    return request.send();
  });
  return call(node.address, kj::mv(sent), [this, address = node.address](Response&& response) {
    noteVersion_(response.getMapVersion());
    pool_.reportSuccess(address);
  });
}

void PooledReplicas::timedOut(const NodeInfo& node) {
  pool_.reportTimeout(node.address);
}

bool PooledReplicas::suspect(const NodeInfo& node) const {
  return pool_.isSuspect(node.address);
}

}  // namespace dynkv
