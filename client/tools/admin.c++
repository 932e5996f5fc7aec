#include "admin.h"

#include <kj/async-io.h>
#include <kj/debug.h>
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "codec.h"
#include "exit-codes.h"
#include "hash.h"
#include "limits.h"
#include "node-pool.h"

namespace dynkv {

bool ClusterStatus::settled() const {
  for (auto& m : members) {
    if (m.status == "removed") continue;
    if (m.status != "up" || m.mapVersion != mapVersion || m.pendingTransfers != 0) return false;
    if (m.partitions == 0) return false;  // up, but the map does not hold it yet
  }
  return true;
}

struct AdminClient::Impl {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::vector<std::string> seeds;
  FailureDetector detector;
  kj::Own<Tls> tls;  // null: plain TCP; before the pool, so that it outlives the connections
  NodePool pool;

  Impl(std::vector<std::string> seedList, std::string cluster, std::string secret,
       const TlsFiles& tlsFiles)
      : seeds(std::move(seedList)),
        pool(io.provider->getNetwork(), io.provider->getTimer(), detector, std::move(cluster),
             std::move(secret), Limits().maxValueBytes) {
    if (tlsFiles.any()) {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { tls = kj::heap<Tls>(tlsFiles); })) {
        throw std::invalid_argument(e->getDescription().cStr());
      }
      pool.useTls(tls->context());
    }
  }

  template <typename Func>
  auto onFirstSeed(Func&& func) -> decltype(func(std::string())) {
    std::string errors;
    for (auto& seed : seeds) {
      kj::Maybe<decltype(func(seed))> result;
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { result = func(seed); })) {
        // A node that answered with a refusal has spoken for the cluster; stop there.
        if (e->getType() == kj::Exception::Type::FAILED) {
          throw std::runtime_error(seed + ": " + e->getDescription().cStr());
        }
        errors += seed + ": " + e->getDescription().cStr() + "; ";
        continue;
      }
      KJ_IF_MAYBE(r, result) { return kj::mv(*r); }
    }
    throw std::runtime_error("no seed answered: " + (errors.empty() ? "no seeds" : errors));
  }

  template <typename T>
  T wait(kj::Promise<T> promise, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    // The timer's "now" moves only while the loop runs: after the client sat idle longer than
    // `timeout`, a deadline taken from it would already have passed. Polling brings it up to
    // date first.
    io.waitScope.poll();
    return io.provider->getTimer()
        .timeoutAfter(timeout.count() * kj::MILLISECONDS, kj::mv(promise))
        .wait(io.waitScope);
  }

  kj::Promise<NodeStats> nodeStats(const std::string& node);
  kj::Promise<void> pollStats(const std::string& node, kj::Duration every,
                              std::function<void(const NodeStats&)>& progress);
};

namespace {

std::string describe(const std::string& node, const kj::Exception& e) {
  // A node's refusal arrives as "remote exception: <its message>"; the node's words suffice.
  std::string text = e.getDescription().cStr();
  const std::string remote = "remote exception: ";
  if (text.rfind(remote, 0) == 0) text = text.substr(remote.size());
  return node + ": " + text;
}

NodeStats fromWire(wire::NodeStats::Reader in) {
  NodeStats out;
  out.id = in.getNode().getId();
  out.address = in.getNode().getAddress();
  out.epoch = in.getEpoch();
  out.rebuilding = in.getRebuilding();
  for (auto h : in.getHints())
    out.hints.push_back({h.getOwner(), h.getOwnerAddress(), h.getCount()});
  auto ae = in.getAntiEntropy();
  out.antiEntropy.lastCompleteAgeMillis = ae.getLastCompleteAgeMillis();
  out.antiEntropy.exchangesFinished = ae.getExchangesFinished();
  out.antiEntropy.exchangesFailed = ae.getExchangesFailed();
  out.antiEntropy.segmentsDiffering = ae.getSegmentsDiffering();
  out.antiEntropy.keysRepaired = ae.getKeysRepaired();
  out.antiEntropy.bytesSent = ae.getBytesSent();
  out.antiEntropy.bytesReceived = ae.getBytesReceived();
  out.antiEntropy.treesDigest = ae.getTreesDigest();
  out.antiEntropy.partitionsHeld = ae.getPartitionsHeld();
  out.antiEntropy.treeMemoryBytes = ae.getTreeMemoryBytes();
  out.antiEntropy.running = ae.getRunning();
  for (auto c : ae.getByCall()) {
    out.antiEntropy.byCall[c.getCall()] = {c.getSent(), c.getReceived()};
  }
  out.tombstones = in.getTombstones();
  out.tombstonesReaped = in.getTombstonesReaped();
  out.partitionsDropped = in.getPartitionsDropped();
  out.admissionSlots = in.getAdmissionSlots();
  out.admissionEnabled = in.getAdmissionEnabled();
  out.foregroundP99Micros = in.getForegroundP99Micros();
  return out;
}

}  // namespace

kj::Promise<NodeStats> AdminClient::Impl::nodeStats(const std::string& node) {
  return pool.admin(node)
      .then([](wire::Admin::Client admin) { return admin.nodeStatsRequest().send(); })
      .then([](capnp::Response<wire::Admin::NodeStatsResults> response) {
        return fromWire(response.getStats());
      });
}

kj::Promise<void> AdminClient::Impl::pollStats(const std::string& node, kj::Duration every,
                                               std::function<void(const NodeStats&)>& progress) {
  // Never resolves: the repair it watches cancels it by ending first.
  return io.provider->getTimer()
      .afterDelay(every)
      .then([this, node]() { return nodeStats(node); })
      .then([&progress](NodeStats stats) { progress(stats); },
            [](kj::Exception&&) { /* a missed reading; the next one may answer */ })
      .then([this, node, every, &progress]() { return pollStats(node, every, progress); });
}

uint64_t NodeStats::hintsHeld() const {
  uint64_t sum = 0;
  for (auto& h : hints) sum += h.count;
  return sum;
}

AdminClient::AdminClient(std::vector<std::string> seeds, std::string cluster, std::string secret,
                         const TlsFiles& tls)
    : impl_(std::make_unique<Impl>(std::move(seeds), std::move(cluster), std::move(secret),
                                   tls)) {}

AdminClient::~AdminClient() = default;

void AdminClient::join(const std::string& address) {
  impl_->onFirstSeed([&](const std::string& seed) {
    impl_->wait(impl_->pool.admin(seed).then([&](wire::Admin::Client admin) {
      auto req = admin.joinRequest();
      req.setAddress(address);
      return req.send().ignoreResult();
    }));
    return 0;
  });
}

void AdminClient::leave(const std::string& address) {
  impl_->onFirstSeed([&](const std::string& seed) {
    impl_->wait(impl_->pool.admin(seed).then([&](wire::Admin::Client admin) {
      auto req = admin.leaveRequest();
      req.setAddress(address);
      return req.send().ignoreResult();
    }));
    return 0;
  });
}

void AdminClient::forceRemove(const std::string& address, bool evenIfAlive) {
  impl_->onFirstSeed([&](const std::string& seed) {
    impl_->wait(impl_->pool.admin(seed).then([&](wire::Admin::Client admin) {
      auto req = admin.forceRemoveRequest();
      req.setAddress(address);
      req.setEvenIfAlive(evenIfAlive);
      return req.send().ignoreResult();
    }));
    return 0;
  });
}

void AdminClient::joinWhenKnown(const std::string& address, std::chrono::milliseconds timeout,
                                const std::function<void(const std::string&)>& progress) {
  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  auto deadline = started + timeout;
  auto lastProgress = started;
  std::string waitingFor;
  for (;;) {
    std::string seedView;
    bool known = false;
    try {
      auto view = status();
      for (auto& m : view.members) {
        if (m.address != address) continue;
        known = true;
        if (m.status == "up") return;  // joined already: nothing to do
      }
      seedView = view.reporter + " does not know " + address + " yet (gossip brings a new "
                 "node in within a few seconds)";
    } catch (const std::exception& e) {
      std::string what = e.what();
      // A seed that refuses us (another cluster, a wrong secret) will not change its mind.
      if (cli::saysRefused(what)) {
        throw;
      }
      seedView = "no seed answered (" + what + ")";
    }
    if (known) {
      join(address);  // a refusal (FAILED) is the cluster's answer: thrown to the caller
      return;
    }
    // Why the cluster may not know it: ask the node itself, so the message says which.
    std::string nodeView;
    try {
      auto own = status(address);
      nodeView = address + " answers, and knows " + std::to_string(own.members.size()) +
                 " member" + (own.members.size() == 1 ? "" : "s");
    } catch (const std::exception& e) {
      nodeView = std::string("the node does not answer: ") + e.what();
    }
    waitingFor = seedView + "; " + nodeView;
    auto now = Clock::now();
    if (now >= deadline) {
      char seconds[32];
      snprintf(seconds, sizeof(seconds), "%.1f", double(timeout.count()) / 1000.0);
      throw std::runtime_error(
          "gave up after " + std::string(seconds) + " s waiting for " + address +
          " to be known to the cluster: " + waitingFor + ". Check that storaged runs at " +
          address + " and listens on that address, that it was started with --seeds naming "
          "a node of this cluster, and that its cluster name and secret are this cluster's");
    }
    if (progress && now - lastProgress >= std::chrono::seconds(1)) {
      progress(waitingFor);
      lastProgress = now;
    }
    // Membership spreads by gossip rounds; the poll is the only way to observe it.
    std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(200),
                                                          deadline - now));
  }
}

ClusterStatus AdminClient::status(const std::string& node) {
  auto ask = [&](const std::string& address) {
    auto response = impl_->wait(impl_->pool.admin(address).then(
        [](wire::Admin::Client admin)
            -> kj::Promise<capnp::Response<wire::Admin::StatusResults>> {
          return admin.statusRequest().send();
        }));
    ClusterStatus status;
    status.reporter = response.getReporter();
    status.mapVersion = response.getMapVersion();
    for (auto m : response.getMembers()) {
      MemberView v;
      auto member = m.getMember();
      auto info = member.getInfo();
      v.id = info.getId();
      v.address = info.getAddress();
      v.http = member.getHttpAddress();
      v.zone = info.getZone();
      v.weight = info.getWeight();
      switch (member.getStatus()) {
        case wire::MemberStatus::JOINING: v.status = "joining"; break;
        case wire::MemberStatus::UP: v.status = "up"; break;
        case wire::MemberStatus::LEAVING: v.status = "leaving"; break;
        case wire::MemberStatus::REMOVED: v.status = "removed"; break;
      }
      v.partitions = m.getPartitions();
      v.pendingTransfers = member.getPendingTransfers();
      v.handoffPartitions = member.getHandoffPartitions().size();
      v.handoffEverywhere = member.getHandoffEverywhere();
      v.mapVersion = member.getMapVersion();
      v.heartbeat = member.getHeartbeat();
      v.phi = m.getPhi();
      v.suspected = m.getSuspected();
      status.members.push_back(std::move(v));
    }
    return status;
  };
  if (!node.empty()) {
    try {
      return ask(node);
    } catch (const kj::Exception& e) {
      throw std::runtime_error(node + ": " + e.getDescription().cStr());
    }
  }
  return impl_->onFirstSeed(ask);
}

std::optional<std::vector<std::string>> AdminClient::localValues(const std::string& node,
                                                                 const std::string& key,
                                                                 const std::string& ns) {
  auto copy = localCopy(node, key, ns);
  if (!copy) return std::nullopt;
  return std::move(copy->values);
}

namespace {

std::string digestOf(const Object& object) {
  // Sync leaves replicas with the same entries but not necessarily in the same sibling order,
  // so siblings are hashed in a canonical order. The version vector is kept sorted already.
  std::vector<uint64_t> parts;
  parts.push_back(uint64_t(object.kind));
  for (auto& e : object.vv.entries()) {
    for (uint64_t v : {e.actor.node, e.actor.epoch, e.counter, uint64_t(e.timestamp)}) {
      parts.push_back(v);
    }
  }
  std::vector<uint64_t> siblings;
  for (auto& s : object.siblings) {
    std::string bytes = std::to_string(s.dot.actor.node) + "/" + std::to_string(s.dot.actor.epoch) +
                        "/" + std::to_string(s.dot.counter) + "/" + std::to_string(s.timestamp) +
                        (s.value ? "=" + *s.value : "#");
    siblings.push_back(hash64(bytes));
  }
  std::sort(siblings.begin(), siblings.end());
  parts.insert(parts.end(), siblings.begin(), siblings.end());
  auto digest = hash64(std::string_view(reinterpret_cast<const char*>(parts.data()),
                                        parts.size() * sizeof(uint64_t)));
  char hex[17];
  snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(digest));
  return hex;
}

LocalCopy summarize(const Object& object) {
  LocalCopy copy;
  for (auto& s : object.siblings) {
    if (s.value) {
      copy.values.push_back(*s.value);
    } else {
      copy.tombstones++;
    }
  }
  copy.digest = digestOf(object);
  for (auto& e : object.vv.entries()) {
    char entry[64];
    snprintf(entry, sizeof(entry), "%s%llx.%llx:%llu", copy.versionVector.empty() ? "" : " ",
             (unsigned long long)e.actor.node, (unsigned long long)e.actor.epoch,
             (unsigned long long)e.counter);
    copy.versionVector += entry;
  }
  return copy;
}

}  // namespace

std::optional<LocalCopy> AdminClient::localCopy(const std::string& node, const std::string& key,
                                                const std::string& ns) {
  try {
    auto response = impl_->wait(impl_->pool.node(node).then(
        [&](wire::Node::Client client) -> kj::Promise<capnp::Response<wire::Node::GetResults>> {
          auto request = client.getRequest();
          auto k = request.initKey();
          k.setNamespace(asData(ns));
          k.setKey(asData(key));
          return request.send();
        }));
    if (!response.getFound()) return std::nullopt;
    return summarize(decodeObject(response.getObject(), Limits()));
  } catch (const kj::Exception& e) {
    throw std::runtime_error(node + ": " + e.getDescription().cStr());
  }
}

InspectReport AdminClient::inspect(const std::string& node, const std::string& key,
                                   const std::string& ns, uint32_t n) {
  try {
    auto response = impl_->wait(impl_->pool.admin(node).then(
        [&](wire::Admin::Client client)
            -> kj::Promise<capnp::Response<wire::Admin::InspectResults>> {
          auto request = client.inspectRequest();
          auto k = request.initKey();
          k.setNamespace(asData(ns));
          k.setKey(asData(key));
          request.setReplicas(n);
          return request.send();
        }));
    InspectReport report;
    report.partition = response.getPartition();
    report.replica = response.getReplica();
    std::optional<Object> merged;
    for (auto copy : response.getCopies()) {
      auto object = decodeObject(copy.getObject(), Limits());
      HeldCopy held;
      held.role = !copy.getStandIn() ? (report.replica ? HeldCopy::Role::REPLICA
                                                       : HeldCopy::Role::HAND_OFF)
                                     : HeldCopy::Role::STAND_IN;
      held.owner = copy.getOwner();
      held.ownerAddress = copy.getOwnerAddress();
      held.copy = summarize(object);
      report.copies.push_back(std::move(held));
      // What a read of this node answers: every copy synced (VersionedStore::get).
      if (!merged) {
        merged = std::move(object);
      } else if (merged->kind == object.kind) {
        merged = sync(*merged, object);
      }
    }
    if (merged) report.merged = summarize(*merged);
    return report;
  } catch (const kj::Exception& e) {
    throw std::runtime_error(node + ": " + e.getDescription().cStr());
  }
}

PartitionMap AdminClient::map(const std::string& node) {
  try {
    auto response = impl_->wait(impl_->pool.node(node).then(
        [](wire::Node::Client client)
            -> kj::Promise<capnp::Response<wire::Node::GetViewResults>> {
          return client.getViewRequest().send();
        }));
    return decodePartitionMap(response.getMap());
  } catch (const kj::Exception& e) {
    throw std::runtime_error(node + ": " + e.getDescription().cStr());
  }
}

NodeStats AdminClient::nodeStats(const std::string& node, std::chrono::milliseconds timeout) {
  try {
    return impl_->wait(impl_->nodeStats(node), timeout);
  } catch (const kj::Exception& e) {
    throw std::runtime_error(describe(node, e));
  }
}

RepairReport AdminClient::repair(const std::string& node, std::optional<uint32_t> partition,
                                 std::function<void(const NodeStats&)> progress,
                                 std::chrono::milliseconds every,
                                 std::chrono::milliseconds timeout) {
  if (partition && *partition > uint32_t(INT32_MAX)) {
    throw std::runtime_error(node + ": invalid argument: partition " + std::to_string(*partition) +
                             " is out of range");
  }
  auto repairing =
      impl_->pool.admin(node)
          .then([partition](wire::Admin::Client admin) {
            auto request = admin.repairRequest();
            request.setPartition(partition ? int32_t(*partition) : -1);
            return request.send();
          })
          .then([](capnp::Response<wire::Admin::RepairResults> response) {
            auto in = response.getReport();
            return RepairReport{in.getExchanges(),         in.getFailed(),       in.getPartitions(),
                                in.getSegmentsDiffering(), in.getKeysRepaired(), in.getMessage()};
          });
  if (progress) {
    auto watching = impl_->pollStats(node, every.count() * kj::MILLISECONDS, progress)
                        .then([]() -> RepairReport { KJ_UNREACHABLE; });
    repairing = repairing.exclusiveJoin(kj::mv(watching));
  }
  try {
    return impl_->wait(kj::mv(repairing), timeout);
  } catch (const kj::Exception& e) {
    throw std::runtime_error(describe(node, e));
  }
}

SnapshotReport AdminClient::snapshot(const std::string& node, const std::string& dir,
                                     std::chrono::milliseconds timeout) {
  auto copying = impl_->pool.admin(node)
                     .then([dir](wire::Admin::Client admin) {
                       auto request = admin.snapshotRequest();
                       request.setDir(dir);
                       return request.send();
                     })
                     .then([](capnp::Response<wire::Admin::SnapshotResults> response) {
                       return SnapshotReport{response.getBytes(), response.getKeys()};
                     });
  try {
    return impl_->wait(kj::mv(copying), timeout);
  } catch (const kj::Exception& e) {
    throw std::runtime_error(describe(node, e));
  }
}

void joinToRing(const std::vector<std::string>& seeds, const std::string& cluster,
                const std::vector<std::string>& addresses,
                std::chrono::steady_clock::time_point deadline, const TlsFiles& tls) {
  // A node is known to the others only once it has gossiped, so an "unknown node" refusal is
  // retried until the deadline.
  AdminClient admin(seeds, cluster, "", tls);
  for (auto& address : addresses) {
    for (;;) {
      std::string problem;
      try {
        auto status = admin.status(address);
        bool up = false;
        for (auto& m : status.members) up |= m.address == address && m.status == "up";
        if (up) break;
        admin.join(address);
        break;
      } catch (const std::exception& e) {
        problem = e.what();
      }
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("cannot join " + address + " to the ring: " + problem);
      }
      // Gossip spreads the new node within a round or two; nothing to await but time.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

void waitSettled(const std::vector<std::string>& addresses, const std::string& cluster,
                 std::chrono::milliseconds timeout, const TlsFiles& tls) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  AdminClient admin(addresses, cluster, "", tls);
  std::string lastProblem;
  for (;;) {
    bool settled = true;
    uint64_t version = 0;
    for (auto& address : addresses) {
      try {
        auto status = admin.status(address);
        size_t up = 0;
        for (auto& m : status.members) up += m.status == "up";
        if (!status.settled() || up != addresses.size() ||
            (version != 0 && status.mapVersion != version)) {
          settled = false;
          lastProblem = address + " has not settled (map v" + std::to_string(status.mapVersion) +
                        ", " + std::to_string(up) + " up)";
        }
        version = status.mapVersion;
      } catch (const std::exception& e) {
        settled = false;
        lastProblem = e.what();
      }
      if (!settled) break;
    }
    if (settled) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("the cluster did not settle in time: " + lastProblem);
    }
    // Convergence is a property of gossip rounds, observed by polling the nodes' status.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace dynkv
