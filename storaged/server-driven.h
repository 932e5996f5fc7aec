// Server-driven coordination (DESIGN.md, "Server-driven mode"): the node coordinates a get
// or a write on behalf of a caller that sent it to a random node, as a load balancer would.
// It runs the same coordinators as the SDK (common/coordinator/, driven by common/net/'s
// RequestDriver), routed by this node's membership view: its own replica is served from its
// store without a round trip, every other node is reached over the node's connection pool.
// It exists for the benchmark's comparison with client-driven coordination (bench/, the
// paper's Table 2).
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include "dynkv.capnp.h"
#include "local-replica.h"
#include "membership.h"
#include "net/node-pool.h"
#include "net/replicas.h"
#include "net/request-driver.h"
#include "hint-store.h"
#include "versioned-store.h"

namespace dynkv::storaged {

using CoordinateGetContext =
    capnp::CallContext<wire::Node::CoordinateGetParams, wire::Node::CoordinateGetResults>;
using CoordinateWriteContext =
    capnp::CallContext<wire::Node::CoordinateWriteParams, wire::Node::CoordinateWriteResults>;

class ServerDriven {
 public:
  ServerDriven(VersionedStore& store, HintStore& hints, Membership& membership,
               TransferManager* transfers, NodePool& pool, kj::Timer& timer,
               BackgroundAdmission* admission = nullptr);
  // All must outlive it (transfers may be null: every partition is readable; admission may be
  // null: this node's replica calls are not measured, see LocalReplica). This node is the
  // store's actor; requests are checked against the store's limits.
  ~ServerDriven() noexcept(false);

  kj::Promise<void> coordinateGet(CoordinateGetContext context);
  kj::Promise<void> coordinateWrite(CoordinateWriteContext context);
  // Fill the call's results. A quorum failure or a request that breaks a limit is a result
  // (error.kind != none, the message as the SDK's Error::what() reads); only a malformed
  // request throws.

 private:
  class NodeReplicas final : public Replicas {
    // This node's replica from its store, every other node over the pool.
   public:
    NodeReplicas(VersionedStore& store, HintStore& hints, Membership& membership,
                 TransferManager* transfers, BackgroundAdmission* admission, NodePool& pool);

    kj::Promise<Reply<std::optional<Object>>> get(const NodeInfo& node,
                                                  const ReplicaKey& key) override;
    kj::Promise<Reply<Object>> coordinatePut(const NodeInfo& node, const ReplicaKey& key,
                                             const WriteContext& context,
                                             const std::optional<std::string>& value,
                                             uint64_t writeId) override;
    kj::Promise<void> replicate(const NodeInfo& node, const ReplicaKey& key, const Object& object,
                                uint64_t hintFor) override;
    void timedOut(const NodeInfo& node) override;
    bool suspect(const NodeInfo& node) const override;

   private:
    uint64_t self_;
    LocalReplica local_;
    PooledReplicas remote_;

    StorageKey storageKey(const ReplicaKey& key);
  };

  VersionedStore& store_;
  Membership& membership_;
  NodeReplicas replicas_;
  RequestDriver driver_;

  struct Refusal {
    wire::Node::CoordinationError::Kind kind;
    std::string message;
  };
  std::optional<Refusal> prepare(wire::Node::CallSettings::Reader settings,
                                 wire::Key::Reader key, CoordinatedCall& call);
  // The call a request asks for, routed by this node's current map; or why it is refused
  // before any replica is asked (settings or key breaking a limit, no ring yet).
};

}  // namespace dynkv::storaged
