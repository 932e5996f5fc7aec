#include "node-pool.h"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>

#include "buffered-stream.h"
#include "codec.h"
#include "protocol-version.h"
#include "request-age.h"
#include "tls.h"

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

namespace {

kj::String tlsFailure(kj::StringPtr description) {
  // kj says "OpenSSL error; message = error:0A000086:SSL routines::certificate verify failed";
  // the reason is OpenSSL's last words, and the likely cause is a certificate of another CA.
  kj::StringPtr reason = description;
  KJ_IF_MAYBE(at, description.findLast(':')) { reason = description.slice(*at + 1); }
  return kj::str("TLS handshake failed (", reason,
                 "): are both certificates from the cluster's CA, and the node's a node's?");
}

}  // namespace

NodePool::NodePool(kj::Network& network, kj::Timer& timer, FailureDetector& detector,
                   std::string cluster, std::string secret, uint32_t maxValueBytes)
    : network_(network),
      timer_(timer),
      detector_(detector),
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
          .then([this](kj::Own<kj::AsyncIoStream> stream)
                    -> kj::Promise<kj::Own<kj::AsyncIoStream>> {
            // Nodes are reached by address, so the name checked is the one every node's
            // certificate carries (tls.h): a client's or an admin's cannot answer for a node.
            if (tls_ == nullptr) return kj::mv(stream);
            return tls_->wrapClient(kj::mv(stream), NODE_SERVER_NAME)
                .catch_([](kj::Exception&& e) -> kj::Own<kj::AsyncIoStream> {
                  kj::throwFatalException(kj::Exception(e.getType(), __FILE__, __LINE__,
                                                        tlsFailure(e.getDescription())));
                });
          })
          .then([this, link = kj::addRef(*link), options, key = kj::str(key)](
                    kj::Own<kj::AsyncIoStream> stream) mutable {
            auto nodeAddress = kj::str(key);  // for a refusal's message; `key` moves below
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
              request.setClock(monotonicClockId());
              request.setProtocol(protocol_);
              auto checked = [nodeAddress = kj::mv(nodeAddress)](AuthResponse&& r) {
                // The node checked ours; check its, so that a node too old for this build
                // (one that predates the check, too) is refused in the same words.
                auto mismatch = protocolMismatch(r.getProtocol(), "this build",
                                                 "the node at " + std::string(nodeAddress.cStr()));
                if (mismatch) {
                  kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__,
                                                        __LINE__, kj::str(*mismatch)));
                }
                return Caps{r.getNode(), r.getPeer(), r.getAdmin()};
              };
              return request.send().then(kj::mv(checked));
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
  if (exception.getType() != kj::Exception::Type::FAILED) {
    detector_.callFailed(address, nowMicros());
  }
}

void NodePool::reportTimeout(const std::string& address) {
  detector_.callFailed(address, nowMicros());
}

void NodePool::reportSuccess(const std::string& address) { detector_.callSucceeded(address); }

int64_t NodePool::nowMicros() const {
  return (timer_.now() - kj::origin<kj::TimePoint>()) / kj::MICROSECONDS;
}

uint64_t NodePool::begin(const std::string& address) {
  return detector_.callStarted(address, nowMicros());
}

void NodePool::finish(uint64_t id, bool answered) {
  detector_.callEnded(id, nowMicros(), answered);
}

double NodePool::phi(const std::string& address) const {
  return detector_.phi(address, nowMicros());
}

bool NodePool::isSuspect(const std::string& address) const {
  return detector_.suspect(address, nowMicros());
}

void NodePool::taskFailed(kj::Exception&& exception) {
  if (exception.getType() == kj::Exception::Type::DISCONNECTED) return;  // the pool reconnects
  KJ_LOG(INFO, "connection watch failed", exception);
}

}  // namespace dynkv
