#include "accept-loop.h"

#include <arpa/inet.h>
#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <list>
#include <string>
#include <unordered_map>

#include "buffered-stream.h"
#include "tls.h"

namespace dynkv {

namespace {

// After accept() fails (EMFILE, ENFILE, ENOBUFS...) the waiting connection is still queued and
// the listener still readable: retrying at once would spin. A short pause lets connections
// close and descriptors free up meanwhile.
constexpr kj::Duration ACCEPT_RETRY_PAUSE = 100 * kj::MILLISECONDS;

enum class Closed { HANDSHAKE, IDLE, SLOW_READER };

std::string addressOf(kj::AsyncIoStream& stream) {
  // The peer's IP address without its port, as raw bytes: what the per-address limit counts.
  // Empty when the stream is not an IP socket (a pipe in a test): such peers share one count.
  sockaddr_storage address{};
  uint length = sizeof(address);
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
                stream.getpeername(reinterpret_cast<sockaddr*>(&address), &length);
              })) {
    return {};
  }
  if (address.ss_family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(address);
    return std::string(reinterpret_cast<const char*>(&in.sin_addr), sizeof(in.sin_addr));
  }
  if (address.ss_family == AF_INET6) {
    auto& in = reinterpret_cast<sockaddr_in6&>(address);
    return std::string(reinterpret_cast<const char*>(&in.sin6_addr), sizeof(in.sin6_addr));
  }
  return {};
}

kj::String printable(const std::string& address) {
  char text[INET6_ADDRSTRLEN] = "?";
  int family = address.size() == 4 ? AF_INET : address.size() == 16 ? AF_INET6 : 0;
  if (family != 0) inet_ntop(family, address.data(), text, sizeof(text));
  return kj::str(text);
}

// A refused connection is told why for this long at most, and this many at once.
constexpr kj::Duration NOTICE_TIME = 1 * kj::SECONDS;
constexpr uint32_t MAX_NOTICES = 64;

struct Notice {
  // A refused connection's last moments: its bootstrap fails with OVERLOADED, saying which
  // limit, under the handshake's message limits.
  Notice(kj::Own<kj::AsyncIoStream> streamParam, const AcceptOptions& options, const char* why)
      : stream(kj::mv(streamParam)),
        buffered(*stream, StreamLimits{options.handshakeMessageWords, options.maxSegments,
                                       options.maxWriteBacklog}),
        network(buffered, capnp::rpc::twoparty::Side::SERVER, options.reader),
        rpcSystem(capnp::makeRpcServer(
            network, capnp::Capability::Client(kj::Exception(
                         kj::Exception::Type::OVERLOADED, __FILE__, __LINE__,
                         kj::str("connection refused: ", why, "; try again later"))))) {
    buffered.setReadAhead(false);
  }

  kj::Own<kj::AsyncIoStream> stream;
  BufferedStream buffered;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpcSystem;
};

struct Connection {
  Connection(kj::Own<kj::AsyncIoStream> streamParam, std::string addressParam,
             kj::TimePoint now)
      : stream(kj::mv(streamParam)), address(kj::mv(addressParam)), openedAt(now),
        lastActive(now) {}

  void startBuffering(const AcceptOptions& options) {
    buffered = kj::heap<BufferedStream>(
        *stream, StreamLimits{options.handshakeMessageWords, options.maxSegments,
                              options.maxWriteBacklog});
    buffered->setReadAhead(false);  // until it authenticates: a 64 KiB buffer is no gift
  }

  kj::Own<kj::AsyncIoStream> stream;  // with TLS, the decrypted stream once the handshake is done
  // Batches the RPC system's reads and writes and checks each frame; null while a TLS
  // handshake is under way.
  kj::Own<BufferedStream> buffered;
  kj::Maybe<kj::String> certificateName;  // the TLS peer's, once its handshake is done
  // Built once the peer has sent its first bytes: a connection that only sits there costs its
  // socket and one pending read, not an RPC system (20,000 idle ones would cost ~250 MB).
  kj::Own<capnp::TwoPartyVatNetwork> network;
  kj::Maybe<capnp::RpcSystem<capnp::rpc::twoparty::VatId>> rpcSystem;
  std::string address;
  kj::TimePoint openedAt;
  bool authenticated = false;
  uint64_t lastMoved = 0;  // bytesMoved() when last looked at
  kj::TimePoint lastActive;
  uint64_t throttleSeen = 0;  // the throttle episode being timed
  kj::TimePoint throttledAt = kj::origin<kj::TimePoint>();
  kj::Maybe<std::list<Connection*>::iterator> handshaking;  // its place among the handshakes
  kj::Own<kj::PromiseFulfiller<void>> evict;  // fulfilled: close it now
};

class Server final : private kj::TaskSet::ErrorHandler {
 public:
  Server(BootstrapFor bootstrapFor, AcceptOptions options)
      : bootstrapFor_(kj::mv(bootstrapFor)), options_(kj::mv(options)), tasks_(*this) {}

  kj::Promise<void> acceptLoop(kj::ConnectionReceiver& listener) {
    return listener.accept().then(
        [this, &listener](kj::Own<kj::AsyncIoStream> stream) {
          admit(kj::mv(stream));
          return acceptLoop(listener);
        },
        [this, &listener](kj::Exception&& e) -> kj::Promise<void> {
          // Never the end of the loop: the node keeps serving the connections it has, and
          // accepts again once descriptors free up.
          if (options_.counters != nullptr) options_.counters->acceptFailures++;
          if (acceptFailures_++ % 1000 == 0) {
            uint64_t failures = acceptFailures_;
            KJ_LOG(WARNING, "accepting a connection failed; retrying", failures, e);
          }
          if (options_.timer == nullptr) return kj::evalLater([]() {}).then(
              [this, &listener]() { return acceptLoop(listener); });
          return options_.timer->afterDelay(ACCEPT_RETRY_PAUSE).then([this, &listener]() {
            return acceptLoop(listener);
          });
        });
  }

 private:
  BootstrapFor bootstrapFor_;
  AcceptOptions options_;
  uint32_t open_ = 0;
  uint64_t refused_ = 0;
  uint64_t acceptFailures_ = 0;
  std::unordered_map<std::string, uint32_t> perAddress_;  // open connections by peer address
  std::list<Connection*> handshakes_;  // spoken, not yet authenticated: oldest first
  uint64_t evicted_ = 0;
  uint32_t notices_ = 0;  // refused connections being told why
  kj::TaskSet tasks_;

  void refuse(uint64_t AcceptCounters::*counter, const char* why, const std::string& address,
              kj::Own<kj::AsyncIoStream> stream) {
    // The peer is told why, OVERLOADED, by a bootstrap that fails so (its client backs off) for
    // a moment; past a few such notices at once (a flood) the stream is dropped at once, closing
    // it, and the peer sees a disconnect.
    if (options_.counters != nullptr) options_.counters->*counter += 1;
    // Over TLS the notice would have to wait for a handshake, which is what the limit spares
    // the node: the connection is just closed.
    if (notices_ < MAX_NOTICES && options_.timer != nullptr && options_.tls == nullptr) {
      notices_++;
      auto notice = kj::heap<Notice>(kj::mv(stream), options_, why);
      auto& network = notice->network;
      tasks_.add(network.onDisconnect()
                     .exclusiveJoin(options_.timer->afterDelay(NOTICE_TIME))
                     .attach(kj::defer([this]() { notices_--; }), kj::mv(notice)));
    }
    if (refused_++ % 1000 == 0) {
      uint64_t refused = refused_;
      kj::String peer = printable(address);
      uint32_t maxConnections = options_.maxConnections;
      uint32_t maxPerAddress = options_.maxConnectionsPerAddress;
      KJ_LOG(WARNING, "connection refused", why, peer, maxConnections, maxPerAddress, refused);
    }
  }

  void admit(kj::Own<kj::AsyncIoStream> stream) {
    auto address = addressOf(*stream);
    if (open_ >= options_.maxConnections) {
      return refuse(&AcceptCounters::refused, "the limit of open connections is reached",
                    address, kj::mv(stream));
    }
    uint32_t& fromAddress = perAddress_[address];
    if (options_.maxConnectionsPerAddress != 0 &&
        fromAddress >= options_.maxConnectionsPerAddress) {
      return refuse(&AcceptCounters::refusedPerAddress,
                    "the limit of open connections from one address is reached", address,
                    kj::mv(stream));
    }
    fromAddress++;
    open_++;
    if (options_.counters != nullptr) options_.counters->open++;

    auto now = options_.timer != nullptr ? options_.timer->now() : kj::origin<kj::TimePoint>();
    auto connection = kj::heap<Connection>(kj::mv(stream), address, now);
    auto& c = *connection;
    kj::Promise<void> ready = nullptr;
    if (options_.tls != nullptr) {
      ready = handshakeTls(c);
    } else {
      c.startBuffering(options_);
      ready = kj::READY_NOW;
    }
    auto served = ready.then([&c]() { return c.buffered->awaitData(); })
                      .then([this, &c](size_t got) -> kj::Promise<void> {
                        if (got == 0) return kj::READY_NOW;  // hung up without a word
                        return serveRpc(c);
                      });
    auto evicted = kj::newPromiseAndFulfiller<void>();
    c.evict = kj::mv(evicted.fulfiller);
    auto done = served.exclusiveJoin(watch(c)).exclusiveJoin(kj::mv(evicted.promise));
    // The promises that use the connection are dropped first, then closed() counts it out.
    tasks_.add(done.attach(kj::defer([this, connection = kj::mv(connection)]() mutable {
      closed(*connection);
      connection = nullptr;
    })));
  }

  void stopHandshake(Connection& c) {
    KJ_IF_MAYBE(at, c.handshaking) {
      handshakes_.erase(*at);
      c.handshaking = nullptr;
    }
  }

  kj::Promise<void> handshakeTls(Connection& c) {
    // The TLS handshake is the first part of the connection's handshake: it counts against
    // `handshakeTimeout` (watch() closes a connection not authenticated in time) and among
    // `maxHandshakes`. A peer without a certificate from the cluster's CA fails it, and is
    // never served an RPC system.
    startHandshake(c);
    kj::AuthenticatedStream plain{kj::mv(c.stream), kj::UnknownPeerIdentity::newInstance()};
    return options_.tls->wrapServer(kj::mv(plain))
        .then(
            [this, &c](kj::AuthenticatedStream&& secured) {
              c.stream = kj::mv(secured.stream);
              c.certificateName = certificateName(*secured.peerIdentity);
              c.startBuffering(options_);
            },
            [this, &c](kj::Exception&& e) {
              // Counted and logged now and then, not per connection: a scan of the port, or a
              // client with the wrong files retrying, would otherwise fill the log.
              if (options_.counters != nullptr) options_.counters->tlsHandshakesFailed++;
              if (tlsFailures_++ % 1000 == 0) {
                uint64_t failed = tlsFailures_;
                kj::String peer = printable(c.address);
                kj::String why = kj::str(e.getDescription());
                KJ_LOG(WARNING, "connection closed: its TLS handshake failed", peer, why,
                       failed);
              }
              // Closed now, as a hang-up is: quietly (taskFailed), having been logged here.
              kj::throwFatalException(KJ_EXCEPTION(DISCONNECTED, "TLS handshake failed"));
            });
  }

  void startHandshake(Connection& c) {
    if (c.handshaking != nullptr) return;  // already counted (since its TLS handshake)
    if (options_.maxHandshakes != 0 && handshakes_.size() >= options_.maxHandshakes) {
      Connection& oldest = *handshakes_.front();
      stopHandshake(oldest);
      if (options_.counters != nullptr) options_.counters->handshakesEvicted++;
      if (evicted_++ % 1000 == 0) {
        uint64_t evicted = evicted_;
        uint32_t maxHandshakes = options_.maxHandshakes;
        KJ_LOG(WARNING, "connection closed: too many handshakes at once, this one the oldest",
               maxHandshakes, evicted);
      }
      oldest.evict->fulfill();
    }
    c.handshaking = handshakes_.insert(handshakes_.end(), &c);
  }

  kj::Promise<void> serveRpc(Connection& c) {
    startHandshake(c);
    c.network = kj::heap<capnp::TwoPartyVatNetwork>(
        *c.buffered, capnp::rpc::twoparty::Side::SERVER, options_.reader);
    auto authenticated = [this, &c]() {
      c.authenticated = true;
      stopHandshake(c);
      c.buffered->setFrameLimit(options_.reader.traversalLimitInWords);
      c.buffered->setReadAhead(true);
    };
    kj::Maybe<kj::StringPtr> name;
    KJ_IF_MAYBE(n, c.certificateName) { name = kj::StringPtr(*n); }
    c.rpcSystem = capnp::makeRpcServer(*c.network, bootstrapFor_(kj::mv(authenticated), name));
    KJ_IF_MAYBE(rpc, c.rpcSystem) {
      if (options_.flowLimitWords != 0) rpc->setFlowLimit(options_.flowLimitWords);
    }
    return c.network->onDisconnect();
  }

  void closed(Connection& c) {
    stopHandshake(c);
    open_--;
    if (options_.counters != nullptr) options_.counters->open--;
    auto at = perAddress_.find(c.address);
    if (at != perAddress_.end() && --at->second == 0) perAddress_.erase(at);
    if (c.buffered.get() != nullptr && c.buffered->messageRefused()) {
      if (options_.counters != nullptr) options_.counters->messagesTooLarge++;
      kj::String peer = printable(c.address);
      KJ_LOG(WARNING, "connection closed: a message larger than allowed", peer);
    }
  }

  kj::Promise<void> watch(Connection& c) {
    // Resolves when a time limit says the connection is to be closed (the caller then drops
    // it); sleeps until the earliest deadline that could apply, or until reading is throttled.
    if (options_.timer == nullptr) return kj::NEVER_DONE;
    auto& timer = *options_.timer;
    auto now = timer.now();
    kj::Maybe<kj::TimePoint> next;
    auto consider = [&next](kj::TimePoint at) {
      KJ_IF_MAYBE(n, next) {
        if (at < *n) next = at;
      } else {
        next = at;
      }
    };
    if (!c.authenticated && options_.handshakeTimeout > 0 * kj::SECONDS) {
      auto deadline = c.openedAt + options_.handshakeTimeout;
      if (now >= deadline) return close(c, Closed::HANDSHAKE);
      consider(deadline);
    }
    // While a TLS handshake is under way there is no buffered stream yet: only the handshake
    // and idle deadlines apply.
    bool buffering = c.buffered.get() != nullptr;
    if (buffering && c.buffered->throttled() && options_.slowReaderTimeout > 0 * kj::SECONDS) {
      if (c.throttleSeen != c.buffered->throttleEpisodes()) {
        c.throttleSeen = c.buffered->throttleEpisodes();
        c.throttledAt = now;
      }
      auto deadline = c.throttledAt + options_.slowReaderTimeout;
      if (now >= deadline) return close(c, Closed::SLOW_READER);
      consider(deadline);
    }
    if (options_.idleTimeout > 0 * kj::SECONDS) {
      // Idle: no byte either way since the last look (so closed after the timeout, and before
      // twice that), and nothing waiting to be written.
      if (buffering &&
          (c.buffered->bytesMoved() != c.lastMoved || c.buffered->writeBacklog() > 0)) {
        c.lastMoved = c.buffered->bytesMoved();
        c.lastActive = now;
      }
      auto deadline = c.lastActive + options_.idleTimeout;
      if (now >= deadline) return close(c, Closed::IDLE);
      consider(deadline);
    }
    kj::Promise<void> wake = kj::NEVER_DONE;
    KJ_IF_MAYBE(n, next) { wake = timer.atTime(*n); }
    if (buffering && !c.buffered->throttled() && options_.slowReaderTimeout > 0 * kj::SECONDS) {
      wake = wake.exclusiveJoin(c.buffered->whenThrottled());
    }
    return wake.then([this, &c]() { return watch(c); });
  }

  kj::Promise<void> close(Connection& c, Closed why) {
    kj::String peer = printable(c.address);
    switch (why) {
      case Closed::HANDSHAKE:
        if (options_.counters != nullptr) options_.counters->handshakeTimeouts++;
        if (handshakeTimeouts_++ % 1000 == 0) {
          uint64_t closed = handshakeTimeouts_;
          KJ_LOG(WARNING, "connection closed: it did not authenticate in time", peer, closed);
        }
        break;
      case Closed::IDLE:
        if (options_.counters != nullptr) options_.counters->idleClosed++;
        break;
      case Closed::SLOW_READER: {
        if (options_.counters != nullptr) options_.counters->slowReadersCut++;
        uint64_t unread = c.buffered->writeBacklog();
        KJ_LOG(WARNING, "connection cut: its peer leaves the answers unread", peer, unread);
        break;
      }
    }
    return kj::READY_NOW;
  }

  uint64_t handshakeTimeouts_ = 0;
  uint64_t tlsFailures_ = 0;

  void taskFailed(kj::Exception&& exception) override {
    // A peer that hangs up is no event; anything else ending a connection is.
    if (exception.getType() == kj::Exception::Type::DISCONNECTED) return;
    KJ_LOG(INFO, "connection ended with an error", exception);
  }
};

}  // namespace

kj::Promise<void> serveAuthenticated(kj::ConnectionReceiver& listener, BootstrapFor bootstrapFor,
                                     AcceptOptions options) {
  auto server = kj::heap<Server>(kj::mv(bootstrapFor), kj::mv(options));
  auto& ref = *server;
  return ref.acceptLoop(listener).attach(kj::mv(server));
}

kj::Promise<void> serveWithHandshake(
    kj::ConnectionReceiver& listener,
    kj::Function<capnp::Capability::Client(Authenticated)> bootstrapFor, AcceptOptions options) {
  return serveAuthenticated(
      listener,
      [bootstrapFor = kj::mv(bootstrapFor)](Authenticated authenticated,
                                            kj::Maybe<kj::StringPtr>) mutable {
        return bootstrapFor(kj::mv(authenticated));
      },
      kj::mv(options));
}

kj::Promise<void> serve(kj::ConnectionReceiver& listener,
                        kj::Function<capnp::Capability::Client()> bootstrapFor,
                        AcceptOptions options) {
  return serveWithHandshake(
      listener,
      [bootstrapFor = kj::mv(bootstrapFor)](Authenticated authenticated) mutable {
        authenticated();
        return bootstrapFor();
      },
      kj::mv(options));
}

}  // namespace dynkv
