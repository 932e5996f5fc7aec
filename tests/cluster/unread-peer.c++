// A peer that never reads its answers, for limits-test.sh: connects to a storaged, authenticates,
// then stops reading and sends `count` gets of one key, pipelined, as fast as the node takes
// them. Exits 0 once the node has cut the connection off (it sees the hang-up without reading
// anything), 1 if it has not within `deadline-s` seconds.
//
//   unread-peer HOST:PORT CLUSTER KEY COUNT DEADLINE_S
#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <poll.h>

#include <cstdlib>
#include <iostream>

#include "dynkv.capnp.h"

namespace {

class StopReading final : public kj::AsyncIoStream {
  // Passes reads through until stop(); after that no read completes, so whatever the node sends
  // stays in the socket (and, once that is full, in the node).
 public:
  explicit StopReading(kj::AsyncIoStream& inner) : inner_(inner) {}
  void stop() { stopped_ = true; }

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    if (stopped_) return kj::NEVER_DONE;
    return inner_.tryRead(buffer, minBytes, maxBytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    return inner_.write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    return inner_.write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }
  void shutdownWrite() override { inner_.shutdownWrite(); }

 private:
  kj::AsyncIoStream& inner_;
  bool stopped_ = false;
};

bool hungUp(int fd) {
  // The node closed its side: POLLRDHUP (or an error) shows without reading the data queued.
  pollfd p{fd, POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: unread-peer HOST:PORT CLUSTER KEY COUNT DEADLINE_S\n";
    return 2;
  }
  auto io = kj::setupAsyncIo();
  auto& timer = io.provider->getTimer();
  auto address = io.provider->getNetwork().parseAddress(argv[1]).wait(io.waitScope);
  auto socket = address->connect().wait(io.waitScope);
  int fd = KJ_ASSERT_NONNULL(socket->getFd());
  StopReading stream(*socket);
  capnp::TwoPartyVatNetwork network(stream, capnp::rpc::twoparty::Side::CLIENT);
  auto rpc = capnp::makeRpcClient(network);
  capnp::word scratch[4]{};
  capnp::MallocMessageBuilder message(scratch);
  auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
  vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
  auto gateway = rpc.bootstrap(vatId).castAs<dynkv::wire::Gateway>();
  auto auth = gateway.authenticateRequest();
  auth.setCluster(argv[2]);
  auto node = auth.send().wait(io.waitScope).getNode();
  stream.stop();

  kj::StringPtr key = argv[3];
  long count = atol(argv[4]);
  auto deadline = timer.now() + atol(argv[5]) * kj::SECONDS;
  kj::Vector<kj::Promise<void>> sent;
  for (long i = 0; i < count && !hungUp(fd); i++) {
    auto get = node.getRequest();
    get.initKey().setKey(key.asBytes());
    sent.add(get.send().ignoreResult().catch_([](kj::Exception&&) {}));
    // Let the RPC system write it out (and see the socket fill up) before the next.
    timer.afterDelay(0 * kj::SECONDS).wait(io.waitScope);
  }
  while (!hungUp(fd)) {
    if (timer.now() >= deadline) {
      std::cout << "not cut off\n";
      return 1;
    }
    timer.afterDelay(20 * kj::MILLISECONDS).wait(io.waitScope);
  }
  std::cout << "cut off\n";
  return 0;
}
