#include "accept-loop.h"

#include <capnp/rpc-twoparty.h>
#include <kj/debug.h>

#include "buffered-stream.h"

namespace dynkv {

namespace {

struct Connection {
  Connection(kj::Own<kj::AsyncIoStream> streamParam, capnp::Capability::Client bootstrap,
             capnp::ReaderOptions options)
      : stream(kj::mv(streamParam)),
        buffered(*stream),
        network(buffered, capnp::rpc::twoparty::Side::SERVER, options),
        rpcSystem(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}

  kj::Own<kj::AsyncIoStream> stream;
  BufferedStream buffered;  // batches the RPC system's reads and writes
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpcSystem;
};

class Server final : private kj::TaskSet::ErrorHandler {
 public:
  Server(kj::Function<capnp::Capability::Client()> bootstrapFor, AcceptOptions options)
      : bootstrapFor_(kj::mv(bootstrapFor)), options_(options), tasks_(*this) {}

  kj::Promise<void> acceptLoop(kj::ConnectionReceiver& listener) {
    return listener.accept().then([this, &listener](kj::Own<kj::AsyncIoStream> stream) {
      if (open_ >= options_.maxConnections) {
        // Dropping the stream closes it; the peer sees a disconnect and may retry later.
        if (options_.counters != nullptr) options_.counters->refused++;
        if (refused_++ % 1000 == 0) {
          KJ_LOG(WARNING, "connection refused: the limit of open connections is reached",
                 options_.maxConnections, refused_);
        }
        return acceptLoop(listener);
      }
      open_++;
      if (options_.counters != nullptr) options_.counters->open++;
      auto connection = kj::heap<Connection>(kj::mv(stream), bootstrapFor_(), options_.reader);
      auto done = connection->network.onDisconnect();
      tasks_.add(done.attach(kj::mv(connection), kj::defer([this]() {
        open_--;
        if (options_.counters != nullptr) options_.counters->open--;
      })));
      return acceptLoop(listener);
    });
  }

 private:
  kj::Function<capnp::Capability::Client()> bootstrapFor_;
  AcceptOptions options_;
  uint32_t open_ = 0;
  uint64_t refused_ = 0;
  kj::TaskSet tasks_;

  void taskFailed(kj::Exception&& exception) override {
    // A peer that hangs up is no event; anything else ending a connection is.
    if (exception.getType() == kj::Exception::Type::DISCONNECTED) return;
    KJ_LOG(INFO, "connection ended with an error", exception);
  }
};

}  // namespace

kj::Promise<void> serve(kj::ConnectionReceiver& listener,
                        kj::Function<capnp::Capability::Client()> bootstrapFor,
                        AcceptOptions options) {
  auto server = kj::heap<Server>(kj::mv(bootstrapFor), options);
  auto& ref = *server;
  return ref.acceptLoop(listener).attach(kj::mv(server));
}

}  // namespace dynkv
