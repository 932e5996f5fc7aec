#include "admin.h"

#include <kj/async-io.h>
#include <kj/debug.h>
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <thread>

#include "codec.h"
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
  NodePool pool;

  Impl(std::vector<std::string> seedList, std::string cluster, std::string secret)
      : seeds(std::move(seedList)),
        pool(io.provider->getNetwork(), io.provider->getTimer(), detector, std::move(cluster),
             std::move(secret), Limits().maxValueBytes) {}

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
  T wait(kj::Promise<T> promise) {
    return io.provider->getTimer()
        .timeoutAfter(5 * kj::SECONDS, kj::mv(promise))
        .wait(io.waitScope);
  }
};

AdminClient::AdminClient(std::vector<std::string> seeds, std::string cluster, std::string secret)
    : impl_(std::make_unique<Impl>(std::move(seeds), std::move(cluster), std::move(secret))) {}

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
    auto object = decodeObject(response.getObject(), Limits());
    LocalCopy copy;
    for (auto& s : object.siblings) {
      if (s.value) {
        copy.values.push_back(*s.value);
      } else {
        copy.tombstones++;
      }
    }
    copy.digest = digestOf(object);
    return copy;
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

void joinToRing(const std::vector<std::string>& seeds, const std::string& cluster,
                const std::vector<std::string>& addresses,
                std::chrono::steady_clock::time_point deadline) {
  // A node is known to the others only once it has gossiped, so an "unknown node" refusal is
  // retried until the deadline.
  AdminClient admin(seeds, cluster);
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
                 std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  AdminClient admin(addresses, cluster);
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
