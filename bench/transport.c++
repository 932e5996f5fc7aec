#include "transport.h"

#include <kj/debug.h>

#include "codec.h"
#include "hash.h"
#include "limits.h"

namespace dynkv::bench {

namespace {

struct FanOut : public kj::Refcounted {
  // An R-of-N fan-out in progress: resolves at the R-th reply, or as soon as R replies can no
  // longer come.
  uint32_t need = 0;
  uint32_t outstanding = 0;
  uint32_t replies = 0;
  bool done = false;
  std::string errors;
  kj::Own<kj::PromiseFulfiller<Outcome>> fulfiller;

  void reply() {
    outstanding--;
    if (!done && ++replies >= need) {
      done = true;
      fulfiller->fulfill(Outcome{true, {}, {}});
    }
  }
  void fail(std::string why) {
    outstanding--;
    errors += why + "; ";
    if (!done && replies + outstanding < need) {
      done = true;
      fulfiller->fulfill(Outcome{false, {}, "floor fan-out failed: " + errors});
    }
  }
};

void setKey(wire::Key::Builder out, const std::string& ns, const std::string& key) {
  out.setNamespace(asData(ns));
  out.setKey(asData(key));
}

void setSettings(wire::Node::CallSettings::Builder out, const Settings& settings) {
  out.setKind(settings.kind == NamespaceKind::LAST_WRITE_WINS ? wire::NamespaceKind::LAST_WRITE_WINS
                                                          : wire::NamespaceKind::VECTOR_CLOCK);
  out.setN(settings.n);
  out.setR(settings.r);
  out.setW(settings.w);
  out.setTimeoutMillis(settings.timeoutMillis);
}

std::string errorText(wire::Node::CoordinationError::Reader error) {
  return std::string(error.getMessage().cStr());
}

}  // namespace

Transport::Transport(kj::Network& network, kj::Timer& timer, std::vector<std::string> seeds,
                     std::string cluster, std::string secret)
    : timer_(timer),
      seeds_(kj::mv(seeds)),
      pool_(network, timer, detector_, kj::mv(cluster), kj::mv(secret), Limits().maxValueBytes),
      map_(std::make_shared<const PartitionMap>()),
      rng_(std::random_device{}()),
      tasks_(*this) {}

kj::Promise<void> Transport::fetchView() {
  return fetchFrom(0, "");
}

kj::Promise<void> Transport::fetchFrom(size_t seed, std::string errors) {
  if (seed >= seeds_.size()) {
    return KJ_EXCEPTION(DISCONNECTED, "no seed answered with a partition map", errors);
  }
  auto address = seeds_[seed];
  auto call = pool_.node(address).then(
      [](wire::Node::Client node) -> kj::Promise<capnp::Response<wire::Node::GetViewResults>> {
        return node.getViewRequest().send();
      });
  return timer_.timeoutAfter(5 * kj::SECONDS, kj::mv(call))
      .then(
          [this](capnp::Response<wire::Node::GetViewResults>&& response) -> kj::Promise<void> {
            auto map = decodePartitionMap(response.getMap());
            KJ_REQUIRE(!map.empty(), "the node has no partition map yet");
            if (map.version() >= map_->version()) {
              map_ = std::make_shared<const PartitionMap>(kj::mv(map));
            }
            return kj::READY_NOW;
          },
          [this, seed, address, errors = kj::mv(errors)](kj::Exception&& e) mutable {
            pool_.reportFailure(address, e);
            errors += address + ": " + e.getDescription().cStr() + "; ";
            return fetchFrom(seed + 1, kj::mv(errors));
          });
}

void Transport::noteVersion(uint64_t version) {
  if (version <= map_->version() || refreshing_) return;
  refreshing_ = true;
  tasks_.add(fetchView().then([this]() { refreshing_ = false; },
                              [this](kj::Exception&& e) {
                                refreshing_ = false;
                                KJ_LOG(WARNING, "partition map refresh failed", e);
                              }));
}

const NodeInfo& Transport::randomNode() {
  auto& nodes = map_->nodes();
  KJ_REQUIRE(!nodes.empty(), "no partition map: call fetchView() first");
  return nodes[std::uniform_int_distribution<size_t>(0, nodes.size() - 1)(rng_)];
}

kj::Promise<Outcome> Transport::bounded(kj::Promise<Outcome> call, uint32_t timeoutMillis) {
  // The node enforces the call's own deadline; this one only catches a node that never
  // answers at all.
  auto late = timer_.afterDelay((timeoutMillis + 500) * kj::MILLISECONDS).then([]() {
    return Outcome{false, {}, "no answer from the node"};
  });
  return call.exclusiveJoin(kj::mv(late));
}

kj::Promise<Outcome> Transport::floor(const std::string& ns, const std::string& key, uint32_t n,
                                      uint32_t r, uint32_t timeoutMillis) {
  auto map = map_;  // the fan-out's nodes are those of one map version
  auto pref = map->preferenceList(map->partitionOf(keyHash(ns, key)), n, 0);
  auto paf = kj::newPromiseAndFulfiller<Outcome>();
  auto fanOut = kj::refcounted<FanOut>();
  fanOut->need = kj::min(r, pref.primaries);
  fanOut->outstanding = pref.primaries;
  fanOut->fulfiller = kj::mv(paf.fulfiller);
  for (uint32_t i = 0; i < pref.primaries; i++) {
    auto address = map->nodes()[pref.nodes[i]].address;
    auto sent = pool_.node(address).then(
        [version = map->version()](
            wire::Node::Client node) -> kj::Promise<capnp::Response<wire::Node::PingResults>> {
          auto request = node.pingRequest();
          request.setMapVersion(version);
          return request.send();
        });
    tasks_.add(sent.then(
        [this,
         f = kj::addRef(*fanOut)](capnp::Response<wire::Node::PingResults>&& response) mutable {
          noteVersion(response.getMapVersion());
          f->reply();
        },
        [this, f = kj::addRef(*fanOut), address](kj::Exception&& e) mutable {
          pool_.reportFailure(address, e);
          f->fail(address + ": " + e.getDescription().cStr());
        }));
  }
  return bounded(kj::mv(paf.promise), timeoutMillis);
}

kj::Promise<Outcome> Transport::serverGet(const std::string& ns, const std::string& key,
                                          const Settings& settings) {
  auto& node = randomNode();
  auto address = node.address;
  auto sent = pool_.node(address).then(
      [version = map_->version(), ns, key, settings](wire::Node::Client node)
          -> kj::Promise<capnp::Response<wire::Node::CoordinateGetResults>> {
        auto request = node.coordinateGetRequest();
        request.setMapVersion(version);
        setKey(request.initKey(), ns, key);
        setSettings(request.initCall(), settings);
        return request.send();
      });
  auto call = sent.then(
      [this](capnp::Response<wire::Node::CoordinateGetResults>&& response) {
        noteVersion(response.getMapVersion());
        auto error = response.getError();
        if (error.getKind() != wire::Node::CoordinationError::Kind::NONE) {
          return Outcome{false, {}, errorText(error)};
        }
        return Outcome{true, std::string(asStringView(response.getContext())), {}};
      },
      [this, address](kj::Exception&& e) {
        pool_.reportFailure(address, e);
        return Outcome{false, {}, address + ": " + e.getDescription().cStr()};
      });
  return bounded(kj::mv(call), settings.timeoutMillis);
}

kj::Promise<Outcome> Transport::serverWrite(const std::string& ns, const std::string& key,
                                            const std::string& value, const std::string& context,
                                            const Settings& settings) {
  auto& node = randomNode();
  auto address = node.address;
  auto sent = pool_.node(address).then(
      [version = map_->version(), ns, key, settings, value, context](wire::Node::Client node)
          -> kj::Promise<capnp::Response<wire::Node::CoordinateWriteResults>> {
        auto request = node.coordinateWriteRequest();
        request.setMapVersion(version);
        setKey(request.initKey(), ns, key);
        setSettings(request.initCall(), settings);
        request.setValue(asData(value));
        request.setContext(asData(context));
        return request.send();
      });
  auto call = sent.then(
      [this](capnp::Response<wire::Node::CoordinateWriteResults>&& response) {
        noteVersion(response.getMapVersion());
        auto error = response.getError();
        if (error.getKind() != wire::Node::CoordinationError::Kind::NONE) {
          return Outcome{false, {}, errorText(error)};
        }
        return Outcome{true, std::string(asStringView(response.getContext())), {}};
      },
      [this, address](kj::Exception&& e) {
        pool_.reportFailure(address, e);
        return Outcome{false, {}, address + ": " + e.getDescription().cStr()};
      });
  return bounded(kj::mv(call), settings.timeoutMillis);
}

void Transport::taskFailed(kj::Exception&& exception) {
  KJ_LOG(WARNING, "benchmark request failed", exception);
}

}  // namespace dynkv::bench
