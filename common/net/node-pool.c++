#include "node-pool.h"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>

#include "buffered-stream.h"
#include "codec.h"

namespace dynkv {

struct NodePool::Link : public kj::Refcounted {
  // One TCP connection and the RPC system on it. Refcounted because the connect promise
  // (held by queued calls) may outlive the pool's entry.
  kj::Own<kj::AsyncIoStream> stream;
  kj::Maybe<kj::Own<BufferedStream>> buffered;  // batches the RPC system's reads and writes
  kj::Maybe<kj::Own<capnp::TwoPartyVatNetwork>> network;
  kj::Maybe<kj::Own<capnp::RpcSystem<capnp::rpc::twoparty::VatId>>> rpc;
  bool broken = false;

  ~Link() noexcept(false) {
    rpc = nullptr;  // the RPC system must go before the network it runs on
    network = nullptr;
    buffered = nullptr;
  }
};

NodePool::NodePool(kj::Network& network, kj::Timer& timer, std::string cluster,
                   std::string secret, uint32_t maxValueBytes)
    : network_(network),
      timer_(timer),
      cluster_(kj::mv(cluster)),
      secret_(kj::mv(secret)),
      maxValueBytes_(maxValueBytes),
      tasks_(*this) {}

NodePool::~NodePool() noexcept(false) {}

kj::Promise<wire::Node::Client> NodePool::node(const std::string& address) {
  return entry(address).caps.addBranch().then([](Caps&& c) { return kj::mv(c.node); });
}
kj::Promise<wire::Peer::Client> NodePool::peer(const std::string& address) {
  return entry(address).caps.addBranch().then([](Caps&& c) { return kj::mv(c.peer); });
}
kj::Promise<wire::Admin::Client> NodePool::admin(const std::string& address) {
  return entry(address).caps.addBranch().then([](Caps&& c) { return kj::mv(c.admin); });
}

NodePool::Entry& NodePool::entry(const std::string& address) {
  auto key = kj::str(address.c_str());
  KJ_IF_MAYBE(entry, entries_.find(key)) {
    if (!entry->link->broken) return *entry;
    entries_.erase(key);
  }

  auto link = kj::refcounted<Link>();
  auto options = readerOptionsFor(maxValueBytes_);
  using AuthResponse = capnp::Response<wire::Gateway::AuthenticateResults>;
  kj::Promise<Caps> connected =
      network_.parseAddress(key)
          .then([](kj::Own<kj::NetworkAddress> addr) {
            auto connecting = addr->connect();
            return connecting.attach(kj::mv(addr));
          })
          .then([this, link = kj::addRef(*link), options, key = kj::str(key)](
                    kj::Own<kj::AsyncIoStream> stream) mutable {
            link->stream = kj::mv(stream);
            auto buffered = kj::heap<BufferedStream>(*link->stream);
            auto network = kj::heap<capnp::TwoPartyVatNetwork>(
                *buffered, capnp::rpc::twoparty::Side::CLIENT, options);
            link->buffered = kj::mv(buffered);
            auto& networkRef = *network;
            link->rpc = kj::heap(capnp::makeRpcClient(networkRef));
            link->network = kj::mv(network);
            // When the connection drops, forget it so that the next call reconnects.
            tasks_.add(networkRef.onDisconnect().then([this, link = kj::addRef(*link),
                                                       key = kj::mv(key)]() mutable {
              link->broken = true;
              KJ_IF_MAYBE(entry, entries_.find(key)) {
                if (entry->link.get() == link.get()) entries_.erase(key);
              }
            }));

            capnp::word scratch[4];
            memset(scratch, 0, sizeof(scratch));
            capnp::MallocMessageBuilder message(scratch);
            auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
            vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
            KJ_IF_MAYBE(rpc, link->rpc) {
              auto gateway = (*rpc)->bootstrap(vatId).castAs<wire::Gateway>();
              auto request = gateway.authenticateRequest();
              request.setCluster(cluster_);
              request.setSecret(asData(secret_));
              return request.send().then([](AuthResponse&& r) {
                return Caps{r.getNode(), r.getPeer(), r.getAdmin()};
              });
            }
            KJ_UNREACHABLE;
          });
  auto forked = connected
                    .catch_([link = kj::addRef(*link)](kj::Exception&& e) mutable -> Caps {
                      link->broken = true;
                      kj::throwFatalException(kj::mv(e));
                    })
                    .fork();
  return entries_.insert(kj::mv(key), Entry{kj::mv(link), kj::mv(forked)}).value;
}

void NodePool::reportFailure(const std::string& address, const kj::Exception& exception) {
  if (exception.getType() == kj::Exception::Type::DISCONNECTED) {
    auto key = kj::str(address.c_str());
    KJ_IF_MAYBE(entry, entries_.find(key)) {
      entry->link->broken = true;
    }
    entries_.erase(key);
  }
  if (exception.getType() != kj::Exception::Type::FAILED) suspect(address);
}

void NodePool::reportTimeout(const std::string& address) { suspect(address); }

void NodePool::reportSuccess(const std::string& address) {
  KJ_IF_MAYBE(h, health_.find(kj::StringPtr(address.c_str()))) {
    h->failures = 0;
    h->retryAt = kj::origin<kj::TimePoint>();
  }
}

PhiAccrual::Options NodePool::latencyDetectorOptions() {
  // Loopback and LAN replies take well under a millisecond, but a busy node or a GC-like
  // stall of a few hundred milliseconds is normal: only a call older than that (and than the
  // spread of recent latencies) makes the node suspect.
  PhiAccrual::Options o;
  o.minStdDevMillis = 50;
  o.acceptablePauseMillis = 300;
  o.firstIntervalMillis = 1;
  return o;
}

NodePool::Health& NodePool::health(const std::string& address) {
  return health_.findOrCreate(kj::StringPtr(address.c_str()), [&]() {
    return kj::HashMap<kj::String, Health>::Entry{kj::str(address.c_str()), Health{}};
  });
}

uint64_t NodePool::begin(const std::string& address) {
  uint64_t id = nextCall_++;
  auto now = timer_.now();
  calls_.emplace(id, Call{address, now});
  health(address).outstanding.emplace(id, now);
  return id;
}

void NodePool::finish(uint64_t id, bool answered) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;  // already finished (answered, then destroyed)
  auto& h = health(it->second.address);
  if (answered) {
    h.latency.addInterval(double((timer_.now() - it->second.sent) / kj::MICROSECONDS) / 1000.0);
  }
  h.outstanding.erase(id);
  calls_.erase(it);
}

double NodePool::phi(const std::string& address) const {
  KJ_IF_MAYBE(h, health_.find(kj::StringPtr(address.c_str()))) {
    if (h->outstanding.empty()) return 0;
    kj::TimePoint oldest = h->outstanding.begin()->second;  // ids grow with time
    return h->latency.phiAfter(double((timer_.now() - oldest) / kj::MICROSECONDS) / 1000.0);
  }
  return 0;
}

bool NodePool::isSuspect(const std::string& address) const {
  KJ_IF_MAYBE(h, health_.find(kj::StringPtr(address.c_str()))) {
    if (timer_.now() < h->retryAt) return true;
  }
  return phi(address) > PHI_SUSPECT_THRESHOLD;
}

void NodePool::suspect(const std::string& address) {
  auto& h = health(address);
  h.failures = kj::min(h.failures + 1, 10u);
  auto backoff = kj::min(100 * kj::MILLISECONDS * (1u << (h.failures - 1)), 5 * kj::SECONDS);
  h.retryAt = timer_.now() + backoff;
}

void NodePool::taskFailed(kj::Exception&& exception) {
  KJ_LOG(INFO, "connection watch failed", exception);
}

}  // namespace dynkv
