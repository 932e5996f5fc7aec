#include "server-driven.h"

#include <chrono>
#include <kj/debug.h>

#include "codec.h"

namespace dynkv::storaged {

namespace {

std::string toStdString(capnp::Data::Reader data) { return std::string(asStringView(data)); }

CallOptions callOptionsFrom(wire::Node::CallSettings::Reader call) {
  CallOptions options;
  if (call.getN() != 0) options.n = call.getN();
  if (call.getR() != 0) options.r = call.getR();
  if (call.getW() != 0) options.w = call.getW();
  if (call.getTimeoutMillis() != 0) {
    options.timeout = std::chrono::milliseconds(call.getTimeoutMillis());
  }
  return options;
}

wire::Node::CoordinationError::Kind toWire(ErrorKind kind) {
  using Kind = wire::Node::CoordinationError::Kind;
  switch (kind) {
    case ErrorKind::INVALID_ARGUMENT: return Kind::INVALID_ARGUMENT;
    case ErrorKind::UNAVAILABLE: return Kind::UNAVAILABLE;
    case ErrorKind::TIMEOUT: return Kind::TIMEOUT;
    case ErrorKind::REJECTED: return Kind::REJECTED;
  }
  return Kind::UNAVAILABLE;
}

void setError(wire::Node::CoordinationError::Builder out, const Error& error) {
  out.setKind(toWire(error.kind()));
  out.setMessage(error.what());
}

}  // namespace

ServerDriven::ServerDriven(kj::Network& network, kj::Timer& timer, ServerDrivenOptions options)
    : network_(network), timer_(timer), options_(kj::mv(options)) {}

AsyncClient& ServerDriven::coordinatorFor(const std::string& ns, NamespaceKind kind) {
  ClientOptions client;
  client.seeds = {options_.advertise};
  client.cluster = options_.cluster;
  client.secret = options_.secret;
  if (kind == NamespaceKind::VECTOR_CLOCK) {
    if (vectorClock_.get() == nullptr) {
      vectorClock_ = AsyncClient::create(network_, timer_, kj::mv(client));
    }
    return *vectorClock_;
  }
  auto name = kj::str(ns.c_str());
  KJ_IF_MAYBE(existing, lastWriteWins_.find(name)) { return **existing; }
  KJ_REQUIRE(lastWriteWins_.size() < MAX_LWW_NAMESPACES,
             "server-driven coordination serves at most MAX_LWW_NAMESPACES last-write-wins "
             "namespaces per node", MAX_LWW_NAMESPACES);
  client.namespaces[ns] = NamespaceKind::LAST_WRITE_WINS;
  auto& entry = lastWriteWins_.insert(kj::mv(name),
                                      AsyncClient::create(network_, timer_, kj::mv(client)));
  return *entry.value;
}

kj::Promise<void> ServerDriven::coordinateGet(CoordinateGetContext context) {
  auto params = context.getParams();
  auto wireKey = params.getKey();
  Key key(toStdString(wireKey.getNamespace()), toStdString(wireKey.getKey()));
  auto& coordinator = coordinatorFor(key.ns, params.getCall().getKind() == wire::NamespaceKind::LAST_WRITE_WINS ? NamespaceKind::LAST_WRITE_WINS : NamespaceKind::VECTOR_CLOCK);
  auto options = callOptionsFrom(params.getCall());
  return coordinator.get(kj::mv(key), options).then([context](Result<GetResult> result) mutable {
    auto results = context.getResults();
    if (!result.ok()) {
      setError(results.initError(), result.error());
      return;
    }
    auto& got = result.value();
    auto siblings = results.initSiblings(got.siblings.size());
    for (size_t i = 0; i < got.siblings.size(); i++) {
      auto& version = got.siblings[i];
      siblings[i].setValue(asData(version.value));
      siblings[i].setDeleted(version.deleted);
      siblings[i].setTimestamp(version.timestampMicros);
    }
    results.setContext(asData(got.context.bytes()));
  });
}

kj::Promise<void> ServerDriven::coordinateWrite(CoordinateWriteContext context) {
  auto params = context.getParams();
  auto wireKey = params.getKey();
  Key key(toStdString(wireKey.getNamespace()), toStdString(wireKey.getKey()));
  auto& coordinator = coordinatorFor(key.ns, params.getCall().getKind() == wire::NamespaceKind::LAST_WRITE_WINS ? NamespaceKind::LAST_WRITE_WINS : NamespaceKind::VECTOR_CLOCK);
  auto options = callOptionsFrom(params.getCall());
  Context readContext(toStdString(params.getContext()));
  auto written = params.getTombstone()
                     ? coordinator.remove(kj::mv(key), kj::mv(readContext), options)
                     : coordinator.put(kj::mv(key), toStdString(params.getValue()),
                                       kj::mv(readContext), options);
  return written.then([context](Result<Context> result) mutable {
    auto results = context.getResults();
    if (!result.ok()) {
      setError(results.initError(), result.error());
      return;
    }
    results.setContext(asData(result.value().bytes()));
  });
}

}  // namespace dynkv::storaged
