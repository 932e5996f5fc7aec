// The node's HTTP port: /metrics (Prometheus), /status.json and the status page at /, served
// with kj::HttpServer on the node's event loop. A thin shell around status-report.h.
//
// Bounded like the RPC port: at most `maxConnections` open at once (past it a connection is
// closed at once and counted), a request's headers must arrive within `headerTimeout` (kj
// bounds their size at 128 KiB), only GET is served (405 otherwise, without reading a body),
// and an unknown path is 404.
#pragma once

#include <kj/async-io.h>
#include <kj/compat/http.h>
#include <kj/timer.h>

#include "metrics.h"

namespace dynkv::storaged {

class HashTrees;        // hash-trees.h
class Service;          // service.h
class TransferManager;  // transfer.h
class Membership;       // membership.h

struct HttpStatusOptions {
  uint32_t maxConnections = 64;
  kj::Duration headerTimeout = 5 * kj::SECONDS;
};

class HttpStatus final : private kj::TaskSet::ErrorHandler {
 public:
  HttpStatus(kj::Timer& timer, Service& service, Membership& membership, HashTrees& trees,
             TransferManager* transfers, Metrics& metrics, HttpStatusOptions options = {});
  // Everything it reads must outlive it. `transfers` may be null (none pending).
  ~HttpStatus() noexcept(false);
  KJ_DISALLOW_COPY(HttpStatus);

  kj::Promise<void> listen(kj::ConnectionReceiver& listener);
  // Serves each connection accepted until the listener fails.

 private:
  class Routes;
  Metrics& metrics_;
  HttpStatusOptions options_;
  kj::HttpHeaderTable headers_;
  kj::Own<Routes> routes_;
  kj::HttpServer server_;
  uint32_t open_ = 0;
  kj::TaskSet tasks_;

  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace dynkv::storaged
