// storaged's gossip codec (encodeGossipMessage, decodeGossipMessage): what a peer's exchange
// decodes to, and what a hostile one costs us.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <catch2/catch.hpp>

#include "allocation-count.h"
#include "codec.h"
#include "gossip.h"

namespace dynkv::storaged {
namespace {

TEST_CASE("gossip codec: a message round-trips, records and map") {
  GossipMessage message;
  Member member;
  member.info = NodeInfo{7, "n7", "a7:1", "z", 2};
  member.status = MemberStatus::UP;
  member.heartbeat = 9;
  member.handoffPartitions = {1, 5};
  message.members = {member};
  message.map = std::make_shared<const PartitionMap>(
      *PartitionMap::fromParts(3, 1, {member.info}, {0, 0}));
  message.mapVersion = 3;
  capnp::MallocMessageBuilder builder;
  encodeGossipMessage(message, builder.initRoot<wire::GossipState>());
  auto decoded = decodeGossipMessage(builder.getRoot<wire::GossipState>().asReader());
  CHECK(decoded.members == message.members);
  CHECK(decoded.mapVersion == 3);
  REQUIRE(decoded.map);
  CHECK(*decoded.map == *message.map);
}

TEST_CASE("gossip codec: a list of empty records costs what was sent, not what it claims") {
  // Found by gossip-fuzz's corpus: 56 bytes claiming 8 million (empty) member records made the
  // decoder reserve 1.8 GB before refusing the first record. A list of zero-sized structs is
  // bounded only by the reader's traversal limit, which readerOptionsFor sets for values.
  const uint32_t claimed = 8000000;
  capnp::word words[6] = {};
  auto put = [&](int word, uint32_t low, uint32_t high) {
    auto bytes = reinterpret_cast<kj::byte*>(&words[word]);
    for (int i = 0; i < 4; i++) {
      bytes[i] = kj::byte(low >> (8 * i));
      bytes[4 + i] = kj::byte(high >> (8 * i));
    }
  };
  put(0, 0, 0x00020002);    // root: a struct of 2 data words and 2 pointers
  put(3, 1 << 2 | 1, 7);    // members: a list of inline structs, one word ahead, 0 words long
  put(5, claimed << 2, 0);  // the list's tag: `claimed` structs of no data and no pointers
  kj::ArrayPtr<const capnp::word> segments[] = {kj::arrayPtr(words, 6)};
  capnp::SegmentArrayMessageReader reader(segments, readerOptionsFor(Limits().maxValueBytes));
  auto in = reader.getRoot<wire::GossipState>();  // read once: the claim counts against the
                                                 // traversal limit each time

  resetLargestAllocation();
  CHECK_THROWS_WITH(decodeGossipMessage(in), Catch::Contains("member record without a node id"));
  CHECK(largestAllocation() < 64 * 1024);
}

}  // namespace
}  // namespace dynkv::storaged
