// The accept loop's own bounds (common/net/accept-loop.h), with a listener that fails on cue
// and connections over in-memory pipes; time is driven.
#include <capnp/rpc-twoparty.h>
#include <capnp/schema.capnp.h>
#include <catch2/catch.hpp>
#include <kj/async-io.h>
#include <kj/timer.h>

#include <filesystem>

#include "accept-loop.h"
#include "admin.h"
#include "tls.h"

namespace dynkv {
namespace {

class FakeListener final : public kj::ConnectionReceiver {
  // accept() answers from a queue of connections, or fails as accept(2) does when the process
  // is out of descriptors, once per failure asked for.
 public:
  kj::Promise<kj::Own<kj::AsyncIoStream>> accept() override {
    if (failures > 0) {
      failures--;
      return KJ_EXCEPTION(FAILED, "accept: Too many open files");
    }
    auto paf = kj::newPromiseAndFulfiller<kj::Own<kj::AsyncIoStream>>();
    waiting = kj::mv(paf.fulfiller);
    return kj::mv(paf.promise);
  }
  uint getPort() override { return 0; }

  kj::Own<kj::AsyncIoStream> connect() {
    // The client's end of a new connection, the server's end handed to the waiting accept().
    auto pipe = kj::newTwoWayPipe();
    KJ_ASSERT(waiting.get() != nullptr);
    auto fulfiller = kj::mv(waiting);
    fulfiller->fulfill(kj::mv(pipe.ends[1]));
    return kj::mv(pipe.ends[0]);
  }

  int failures = 0;
  kj::Own<kj::PromiseFulfiller<kj::Own<kj::AsyncIoStream>>> waiting;
};

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope ws{loop};
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  FakeListener listener;
  AcceptCounters counters;

  AcceptOptions options() {
    AcceptOptions o;
    o.timer = &timer;
    o.counters = &counters;
    return o;
  }
  void advance(kj::Duration d) {
    timer.advanceTo(timer.now() + d);
    loop.run();
  }
};

capnp::Capability::Client nothing() {
  return capnp::Capability::Client(KJ_EXCEPTION(FAILED, "no bootstrap in this test"));
}

TEST_CASE("accept loop: accept() failing (out of descriptors) is retried, never the end") {
  Fixture f;
  f.listener.failures = 3;
  auto serving = serve(f.listener, []() { return nothing(); }, f.options());
  f.loop.run();
  CHECK(f.counters.acceptFailures == 1);
  CHECK_FALSE(serving.poll(f.ws));  // still running, paused on the timer
  f.advance(100 * kj::MILLISECONDS);
  f.advance(100 * kj::MILLISECONDS);
  f.advance(100 * kj::MILLISECONDS);
  CHECK(f.counters.acceptFailures == 3);
  auto client = f.listener.connect();
  client->write("\0\0\0\0", 4).wait(f.ws);
  f.loop.run();
  CHECK(f.counters.open == 1);
}

TEST_CASE("accept loop: a connection that has not authenticated in time is closed") {
  Fixture f;
  auto options = f.options();
  options.handshakeTimeout = 10 * kj::SECONDS;
  kj::Vector<Authenticated> authenticate;
  auto serving = serveWithHandshake(
      f.listener,
      [&](Authenticated done) {
        authenticate.add(kj::mv(done));
        return nothing();
      },
      options);
  f.loop.run();
  auto silent = f.listener.connect();
  f.loop.run();
  auto trusted = f.listener.connect();
  trusted->write("\0\0\0\0", 4).wait(f.ws);  // speaks: gets its RPC system and bootstrap
  f.loop.run();
  REQUIRE(authenticate.size() == 1);
  authenticate[0]();
  CHECK(f.counters.open == 2);
  f.advance(9 * kj::SECONDS);
  CHECK(f.counters.open == 2);
  f.advance(1 * kj::SECONDS);
  CHECK(f.counters.open == 1);  // the silent one; the authenticated one stays
  CHECK(f.counters.handshakeTimeouts == 1);
  char byte;
  CHECK(silent->tryRead(&byte, 1, 1).wait(f.ws) == 0);  // closed: the end of the stream
}

TEST_CASE("accept loop: past max-handshakes the oldest unauthenticated connection is closed") {
  Fixture f;
  auto options = f.options();
  options.maxHandshakes = 2;
  auto serving = serveWithHandshake(
      f.listener, [&](Authenticated) { return nothing(); }, options);
  f.loop.run();
  kj::Vector<kj::Own<kj::AsyncIoStream>> clients;
  for (int i = 0; i < 3; i++) {
    clients.add(f.listener.connect());
    clients.back()->write("\0\0\0\0", 4).wait(f.ws);
    f.loop.run();
  }
  CHECK(f.counters.handshakesEvicted == 1);
  CHECK(f.counters.open == 2);
  char byte;
  CHECK(clients[0]->tryRead(&byte, 1, 1).wait(f.ws) == 0);
}

struct Certificates {
  // A CA and certificates from `dynkv admin certs`, in a directory of their own.
  Certificates() {
    char name[] = "/tmp/accept-loop-test-XXXXXX";
    REQUIRE(mkdtemp(name) != nullptr);
    dir = name;
    writeCertificates(dir, {"n1"}, "app", "admin", 1);
  }
  ~Certificates() { std::filesystem::remove_all(dir); }
  TlsFiles of(const std::string& who) const {
    return {dir + "/ca.pem", dir + "/" + who + ".pem", dir + "/" + who + ".key"};
  }
  std::string dir;
};

TEST_CASE("accept loop: TLS hands the peer's certificate name to the bootstrap, in time") {
  Certificates certificates;
  Tls node(certificates.of("node-n1")), client(certificates.of("client"));
  Fixture f;
  auto options = f.options();
  options.tls = &node.context();
  options.handshakeTimeout = 10 * kj::SECONDS;
  kj::Vector<Authenticated> authenticate;
  kj::Vector<kj::String> names;
  auto serving = serveAuthenticated(
      f.listener,
      [&](Authenticated done, kj::Maybe<kj::StringPtr> name) {
        authenticate.add(kj::mv(done));
        names.add(kj::str(KJ_ASSERT_NONNULL(name)));
        return nothing();
      },
      options);
  f.loop.run();
  // One that never starts its TLS handshake, one that speaks plain bytes, one with a client
  // certificate of the cluster's CA.
  auto silent = f.listener.connect();
  f.loop.run();
  auto plain = f.listener.connect();
  plain->write("\0\0\0\0\0\0\0\0", 8).wait(f.ws);
  f.loop.run();
  auto raw = f.listener.connect();
  auto secured = client.context().wrapClient(kj::mv(raw), NODE_SERVER_NAME).wait(f.ws);
  secured->write("\0\0\0\0", 4).wait(f.ws);
  f.loop.run();
  REQUIRE(names.size() == 1);
  CHECK(names[0] == "client:app");
  authenticate[0]();
  CHECK(f.counters.open == 2);  // the plain one failed its handshake and is closed
  CHECK(f.counters.tlsHandshakesFailed == 1);
  char byte;
  CHECK(plain->tryRead(&byte, 1, 1).wait(f.ws) == 0);
  f.advance(10 * kj::SECONDS);
  CHECK(f.counters.open == 1);  // the silent one counted against the handshake timeout
  CHECK(f.counters.handshakeTimeouts == 1);
  CHECK(silent->tryRead(&byte, 1, 1).wait(f.ws) == 0);
}

}  // namespace
}  // namespace dynkv
