// The RPC face of a storage node: the Gateway handed out as bootstrap capability and the
// Node interface it grants after authentication (schema/dynkv.capnp).
#pragma once

#include <capnp/capability.h>
#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>
#include <string>

#include "hint-store.h"
#include "membership.h"
#include "roles.h"
#include "versioned-store.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

class AntiEntropy;          // anti-entropy.h
class BackgroundAdmission;  // admission.h
class Metrics;              // metrics.h
class ServerDriven;         // server-driven.h
class TransferManager;      // transfer.h

struct ServiceOptions {
  std::string cluster = "dynkv";
  std::string secret;
  // What a connection must offer to be granted anything; empty: none (a connection offering
  // none is granted). Never printed: a wrong one is answered "authentication failed" after a
  // penalty, and a connection that fails a few times is refused for good (authentication.h).
  ServerDriven* serverDriven = nullptr;
  // Serves Node.coordinateGet/coordinateWrite (server-driven mode, for bench/); null: those
  // calls fail as unimplemented. Must outlive every connection, as the stores and membership do.
  TransferManager* transfers = nullptr;
  // Partitions still streaming in are refused for reads; null: every partition is readable.
  AntiEntropy* antiEntropy = nullptr;
  // Answers the peers' anti-entropy steps and Admin.repair, and reports in Admin.nodeStats;
  // null: those calls fail as unimplemented, and nodeStats reports no anti-entropy.
  BackgroundAdmission* admission = nullptr;
  // Each replica call's storage latency is a foreground sample of it (LocalReplica); null:
  // not measured.
  StorageEngine* engine = nullptr;
  // Admin.snapshot copies it (on a thread of its own); null: snapshot fails as unimplemented.
  // Must outlive the service.
  Metrics* metrics = nullptr;
  // Every Node call's latency and outcome, stale and authentication refusals are recorded in
  // it (the HTTP port's /metrics); null: not recorded. Must outlive the service.
};

class Service {
  // The stores, membership and options every connection's capabilities answer from. Must
  // outlive every connection it served, as the stores and membership must.
 public:
  Service(VersionedStore& store, HintStore& hints, Membership& membership, kj::Timer& timer,
          ServiceOptions options);
  // `timer` times the penalty a failed authentication waits before it is answered.
  ~Service() noexcept(false);
  KJ_DISALLOW_COPY(Service);

  capnp::Capability::Client connect(kj::Maybe<kj::Function<void()>> authenticated = nullptr,
                                    kj::Maybe<Role> role = nullptr);
  // The Gateway for one new connection (net/accept-loop.h serves one per connection); it calls
  // `authenticated`, if given, when the connection authenticates (lifting the accept loop's
  // handshake limits for it). `role`, set for a TLS connection from its certificate, limits
  // what the Gateway grants (roles.h: a client gets Node, a node Node and Peer, an admin Node
  // and Admin; the rest refuse every call, saying which role they need); null (plain TCP):
  // everything, to whoever has the secret. Its Node
  // is that connection's own, so that it can tell how long the connection's requests waited
  // (common/net/request-age.h); Peer and Admin are shared. Replication with hintFor set keeps
  // the object in `hints`; everything else is `store`'s.

  void nodeStats(wire::NodeStats::Builder out);
  void status(wire::Admin::StatusResults::Builder out);
  // What Admin.nodeStats and Admin.status answer, for the node's own HTTP port (http-status.h).

  struct Shared;

 private:
  kj::Own<Shared> shared_;
};

}  // namespace dynkv::storaged
