// The benchmark's own request paths, beside the SDK's client-driven one:
// - the transport floor: the no-op `ping` RPC fanned out to a key's N preference-list nodes,
//   complete at the R-th reply, exactly the shape of a quorum read without storage work;
// - server-driven requests: each sent to a node picked at random from the ring, as a load
//   balancer would, which coordinates it (Node.coordinateGet / coordinateWrite).
// Both use the SDK's NodePool (one connection per node, the same code the SDK routes with).
#pragma once

#include <dynkv/namespace-kind.h>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "node-pool.h"
#include "partition-map.h"

namespace dynkv::bench {

struct Outcome {
  bool ok = false;
  std::string context;  // server-driven: the opaque dynkv::Context bytes of the result
  std::string error;    // when !ok
};

struct Settings {
  NamespaceKind kind = NamespaceKind::VECTOR_CLOCK;
  uint32_t n = 3, r = 2, w = 2;
  uint32_t timeoutMillis = 2000;
};

class Transport final : private kj::TaskSet::ErrorHandler {
 public:
  Transport(kj::Network& network, kj::Timer& timer, std::vector<std::string> seeds,
            std::string cluster, std::string secret);

  kj::Promise<void> fetchView();
  // Fetches the partition map from the first seed that answers. Call (and wait) once before
  // anything else; replies carrying a newer map version refetch it in the background.

  const PartitionMap& map() const { return *map_; }

  kj::Promise<Outcome> floor(const std::string& ns, const std::string& key, uint32_t n, uint32_t r,
                             uint32_t timeoutMillis);
  // `ping` to the key's n primaries; ok at the r-th reply.

  kj::Promise<Outcome> serverGet(const std::string& ns, const std::string& key,
                                 const Settings& settings);
  kj::Promise<Outcome> serverWrite(const std::string& ns, const std::string& key,
                                   const std::string& value, const std::string& context,
                                   const Settings& settings);
  // To a random node of the ring, which coordinates the request on its own view.

 private:
  kj::Timer& timer_;
  std::vector<std::string> seeds_;
  FailureDetector detector_;  // this client's own, as in the SDK
  NodePool pool_;
  std::shared_ptr<const PartitionMap> map_;
  bool refreshing_ = false;
  std::mt19937_64 rng_;
  kj::TaskSet tasks_;  // replies still in flight after their request completed

  const NodeInfo& randomNode();
  void noteVersion(uint64_t version);
  kj::Promise<void> fetchFrom(size_t seed, std::string errors);
  kj::Promise<Outcome> bounded(kj::Promise<Outcome> call, uint32_t timeoutMillis);
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace dynkv::bench
