// Server-driven coordination (DESIGN.md, "Server-driven mode"): the node coordinates a get
// or a write on behalf of a caller that sent it to a random node, as a load balancer would.
// It runs the SDK's own coordinator (dynkv::AsyncClient, client/) seeded with this node's
// address, so it routes by this node's membership view; there is no second implementation
// of the quorum logic. It exists for the benchmark's comparison with client-driven
// coordination (bench/, the paper's Table 2).
#pragma once

#include <dynkv/async-client.h>

#include <kj/async-io.h>
#include <kj/map.h>
#include <kj/timer.h>
#include <string>

#include "dynkv.capnp.h"

namespace dynkv::storaged {

using CoordinateGetContext =
    capnp::CallContext<wire::Node::CoordinateGetParams, wire::Node::CoordinateGetResults>;
using CoordinateWriteContext =
    capnp::CallContext<wire::Node::CoordinateWriteParams, wire::Node::CoordinateWriteResults>;

struct ServerDrivenOptions {
  std::string advertise;  // this node's HOST:PORT: the coordinator's only seed
  std::string cluster = "dynkv";
  std::string secret;
};

class ServerDriven {
 public:
  ServerDriven(kj::Network& network, kj::Timer& timer, ServerDrivenOptions options);
  // `network` and `timer` must outlive it. No connection is made until the first request.

  kj::Promise<void> coordinateGet(CoordinateGetContext context);
  kj::Promise<void> coordinateWrite(CoordinateWriteContext context);
  // Fill the call's results. A quorum failure is a result (error.kind != none); only a
  // malformed request throws.

  static constexpr size_t MAX_LWW_NAMESPACES = 16;
  // The SDK picks a namespace's versioning from ClientOptions::namespaces, fixed when the
  // client is created, so each last-write-wins namespace gets a coordinator of its own (one
  // more connection per node). Requests for more namespaces than this are refused.

 private:
  kj::Network& network_;
  kj::Timer& timer_;
  ServerDrivenOptions options_;
  kj::Own<AsyncClient> vectorClock_;  // every namespace not listed below
  kj::HashMap<kj::String, kj::Own<AsyncClient>> lastWriteWins_;

  AsyncClient& coordinatorFor(const std::string& ns, NamespaceKind kind);
};

}  // namespace dynkv::storaged
