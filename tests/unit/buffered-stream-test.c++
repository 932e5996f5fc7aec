// BufferedStream's bounds for connections the node accepts (common/net/buffered-stream.h), over
// an in-memory pipe: a message header that declares too much fails the read before the reader
// has it (so capnp never allocates for it), and a peer that leaves the answers unread stops
// being read.
#include <capnp/message.h>
#include <capnp/serialize-async.h>
#include <capnp/serialize.h>
#include <capnp/schema.capnp.h>
#include <catch2/catch.hpp>
#include <kj/async-io.h>
#include <string>

#include "buffered-stream.h"

namespace dynkv {
namespace {

struct Pipe {
  kj::EventLoop loop;
  kj::WaitScope ws{loop};
  kj::TwoWayPipe pipe = kj::newTwoWayPipe();
};

kj::Array<kj::byte> header(uint32_t segments, uint32_t wordsEach) {
  // The stream framing's segment table: count less one, each size, padding to a word.
  size_t entries = 1 + segments + (segments % 2 == 0 ? 1 : 0);
  auto out = kj::heapArray<kj::byte>(entries * 4);
  memset(out.begin(), 0, out.size());
  uint32_t count = segments - 1;
  memcpy(out.begin(), &count, 4);
  for (uint32_t i = 0; i < segments; i++) memcpy(out.begin() + 4 * (i + 1), &wordsEach, 4);
  return out;
}

TEST_CASE("buffered stream: a header declaring more words than allowed fails the read") {
  Pipe p;
  BufferedStream in(*p.pipe.ends[1], StreamLimits{1024, 128, 0});
  auto bytes = header(1, 8 << 20);  // 64 MiB
  auto written = p.pipe.ends[0]->write(bytes.begin(), bytes.size());
  auto read = capnp::readMessage(in);
  CHECK_THROWS_WITH(read.wait(p.ws), Catch::Contains("larger than allowed"));
  CHECK(in.messageRefused());
}

TEST_CASE("buffered stream: a header declaring too many segments fails the read") {
  Pipe p;
  BufferedStream in(*p.pipe.ends[1], StreamLimits{1 << 20, 128, 0});
  auto bytes = header(200, 1);
  auto written = p.pipe.ends[0]->write(bytes.begin(), bytes.size());
  auto read = capnp::readMessage(in);
  CHECK_THROWS_WITH(read.wait(p.ws), Catch::Contains("too many segments"));
}

TEST_CASE("buffered stream: messages within the limits pass, after the limit is raised too") {
  Pipe p;
  BufferedStream in(*p.pipe.ends[1], StreamLimits{64, 128, 0});
  auto send = [&](size_t textBytes) {
    capnp::MallocMessageBuilder message;
    auto node = message.initRoot<capnp::schema::Node>();
    node.setDisplayName(std::string(textBytes, 'x'));
    auto words = capnp::messageToFlatArray(message);
    auto bytes = words.asBytes();
    return p.pipe.ends[0]->write(bytes.begin(), bytes.size()).attach(kj::mv(words));
  };
  // Two messages back to back: the meter follows each frame's segments to the next header.
  auto sending = send(100).then([&]() { return send(200); });
  auto first = capnp::readMessage(in).wait(p.ws);
  CHECK(first->getRoot<capnp::schema::Node>().getDisplayName().size() == 100);
  auto second = capnp::readMessage(in).wait(p.ws);
  CHECK(second->getRoot<capnp::schema::Node>().getDisplayName().size() == 200);
  sending.wait(p.ws);

  // 64 words would refuse a 2 KiB message; raised (as after authentication), it passes.
  in.setFrameLimit(1024);
  auto third = send(2000);
  CHECK(capnp::readMessage(in).wait(p.ws)->getRoot<capnp::schema::Node>().getDisplayName()
            .size() == 2000);
  third.wait(p.ws);
}

TEST_CASE("buffered stream: a peer that leaves the answers unread is read no more") {
  Pipe p;
  auto& peer = *p.pipe.ends[0];
  BufferedStream node(*p.pipe.ends[1], StreamLimits{0, 0, 4096});
  std::string answers(10000, 'a');
  node.write(answers.data(), answers.size()).wait(p.ws);  // buffered: completes at once

  // The peer sends a request; the node does not read it while 10,000 bytes wait for the peer.
  auto sent = peer.write("q", 1);
  char got = 0;
  auto read = node.tryRead(&got, 1, 1);
  CHECK_FALSE(read.poll(p.ws));
  CHECK(node.throttled());
  CHECK(node.throttleEpisodes() == 1);

  // Once the peer takes the answers, the node reads again.
  char drained[10000];
  auto drain = peer.read(drained, sizeof(drained));
  drain.wait(p.ws);
  CHECK(read.wait(p.ws) == 1);
  CHECK(got == 'q');
  CHECK_FALSE(node.throttled());
}

}  // namespace
}  // namespace dynkv
