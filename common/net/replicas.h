// The replicas of a coordinated call, as the request driver (request-driver.h) reaches them:
// the three replica calls of schema/dynkv.capnp's Node (get, coordinatePut, replicate),
// addressed by node, with the core's values in and out. The SDK reaches every replica over
// its connection pool (PooledReplicas, below); a node coordinating on a caller's behalf
// (storaged's server-driven mode) serves its own replica from its store and reaches the
// others over its pool. A test reaches fakes.
#pragma once

#include <kj/async.h>
#include <kj/function.h>

#include <optional>
#include <string>
#include <variant>

#include "dvv.h"
#include "limits.h"
#include "node-pool.h"
#include "outcome.h"
#include "partition-map.h"

namespace dynkv {

struct ReplicaKey {
  // What every replica call of one coordinated call names.
  uint64_t mapVersion = 0;  // the map the call routes by: a replica holding a newer one says so
  std::string ns;
  std::string key;
  int64_t patienceMicros = 0;
  // How long the caller waits for each replica's answer (0: not said). A replica may refuse a
  // coordinatePut or replicate that reached it too late to be answered in time
  // (common/net/request-age.h).
};

struct ReplicaFailed {
  // A replica replied, but its reply is no answer (MALFORMED: it did not decode).
  ReplicaError error = ReplicaError::MALFORMED;
  std::string detail;
};

template <typename T>
using Reply = std::variant<T, ReplicaFailed>;

class Replicas {
  // Every call's arguments must stay valid until its promise resolves or is dropped (the
  // driver owns them for the whole call). A call resolves with the replica's reply, rejects
  // with a kj::Exception when there is none (an infrastructure fault: classify() says which),
  // and may be dropped unanswered when the caller stops waiting.
 public:
  virtual ~Replicas() noexcept(false) = default;

  virtual kj::Promise<Reply<std::optional<Object>>> get(const NodeInfo& node,
                                                        const ReplicaKey& key) = 0;
  // The replica's copy of the key; nullopt if it holds none.

  virtual kj::Promise<Reply<Object>> coordinatePut(const NodeInfo& node, const ReplicaKey& key,
                                                   const WriteContext& context,
                                                   const std::optional<std::string>& value,
                                                   uint64_t writeId) = 0;
  // A vector-clock write coordinated by this replica: it mints a version superseding
  // `context` (value nullopt: a tombstone), named `writeId` (the same for every replica the
  // call asks to coordinate it), stores it, and answers with the stored object.

  virtual kj::Promise<void> replicate(const NodeInfo& node, const ReplicaKey& key,
                                      const Object& object, uint64_t hintFor) = 0;
  // The replica stores sync(its copy, object); with hintFor != 0 it stands in for that owner
  // (sloppy quorum) and keeps the object in its hint store for it instead.

  virtual void timedOut(const NodeInfo& node) = 0;
  // A call to `node` got no reply within the caller's replica timeout and was dropped.

  virtual bool suspect(const NodeInfo& node) const = 0;
  // The failure detector's belief: route around `node` (to a fallback) while it holds.
};

ReplicaError classify(const kj::Exception& exception);
// The one place a call's kj::Exception becomes a ReplicaError. DISCONNECTED: UNREACHABLE;
// OVERLOADED: OVERLOADED; FAILED or UNIMPLEMENTED: the node refused, INVALID_REQUEST when
// it refused the request itself (the service's message starts "invalid argument"), else
// REFUSED.

class PooledReplicas final : public Replicas {
  // Every replica over a connection pool. Each call feeds the pool's failure detector: its
  // latency, a failure (reportFailure), a timeout (reportTimeout), an answer (reportSuccess).
 public:
  PooledReplicas(NodePool& pool, const Limits& limits, kj::Function<void(uint64_t)> noteVersion);
  // Answers are decoded within `limits`, read at each answer (the owner may change them).
  // noteVersion(v) is called with the map version every reply carries. The pool and the
  // limits must outlive this object.

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
  NodePool& pool_;
  const Limits& limits_;
  kj::Function<void(uint64_t)> noteVersion_;

  template <typename Response, typename OnAnswer>
  auto call(const std::string& address, kj::Promise<Response> sent, OnAnswer onAnswer);
};

}  // namespace dynkv
