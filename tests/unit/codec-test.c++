// The object codec's bounds: what checkStorable accepts is exactly what decodeObject reads back.
#include <catch2/catch.hpp>

#include "codec.h"

namespace dynkv {
namespace {

bool decodes(const Object& object, const Limits& limits) {
  auto words = objectToWords(object);
  try {
    objectFromBytes(words.asBytes(), limits);
    return true;
  } catch (const kj::Exception&) {
    return false;
  }
}

Object withEntries(size_t entries) {
  Object object;
  for (uint64_t i = 0; i < entries; i++) object.vv.set(Actor{i + 1, 1}, 1, 10);
  object.siblings.push_back(Sibling{Dot{Actor{1, 1}, 1}, 10, std::string("v")});
  return object;
}

Object withSiblings(size_t siblings) {
  Object object;
  for (uint64_t i = 1; i <= siblings; i++) {
    object.siblings.push_back(Sibling{Dot{Actor{1, 1}, i}, 10, std::string("v")});
  }
  object.vv.set(Actor{1, 1}, siblings, 10);
  return object;
}

TEST_CASE("codec: checkStorable refuses, naming the limit, exactly what the decoder refuses") {
  Limits limits;
  limits.maxValueBytes = 8;
  for (size_t n : {MAX_DECODED_VV_ENTRIES, MAX_DECODED_VV_ENTRIES + 1}) {
    auto object = withEntries(n);
    CHECK(checkStorable(object, limits).has_value() == !decodes(object, limits));
  }
  CHECK(*checkStorable(withEntries(41), limits) ==
        "invalid argument: the object has 41 version-vector entries; the limit is 40");
  for (size_t n : {size_t(Limits::MAX_SIBLINGS), size_t(Limits::MAX_SIBLINGS) + 1}) {
    auto object = withSiblings(n);
    CHECK(checkStorable(object, limits).has_value() == !decodes(object, limits));
  }
  CHECK_THAT(*checkStorable(withSiblings(65), limits),
             Catch::StartsWith("invalid argument: the object has 65 siblings; the limit is 64"));
  auto big = withEntries(1);
  big.siblings[0].value = std::string(9, 'x');
  CHECK_FALSE(decodes(big, limits));
  CHECK_THAT(*checkStorable(big, limits), Catch::Contains("9 bytes; the limit is 8"));
}

TEST_CASE("codec: a gossip record or map with an oversized name, address or zone is refused") {
  for (int field = 0; field < 3; field++) {
    Member member;
    member.info = NodeInfo{7, "n7", "a7:1", "z", 1};
    std::string huge(1 << 20, 'x');
    (field == 0 ? member.info.name : field == 1 ? member.info.address : member.info.zone) = huge;
    capnp::MallocMessageBuilder message;
    encodeMember(member, message.initRoot<wire::Member>());
    CHECK_THROWS_WITH(decodeMember(message.getRoot<wire::Member>().asReader()),
                      Catch::Contains("is 1048576 bytes; the limit is 255"));

    auto map = PartitionMap::fromParts(3, 1, {NodeInfo{7, "n7", "a7:1", "z", 1}}, {0, 0});
    REQUIRE(map);
    capnp::MallocMessageBuilder mapMessage;
    auto wireMap = mapMessage.initRoot<wire::PartitionMap>();
    encodePartitionMap(*map, wireMap);
    auto node = wireMap.getNodes()[0];
    field == 0 ? node.setName(huge) : field == 1 ? node.setAddress(huge) : node.setZone(huge);
    CHECK_THROWS_WITH(decodePartitionMap(wireMap.asReader()),
                      Catch::Contains("is 1048576 bytes; the limit is 255"));
  }
  Member fits;
  fits.info = NodeInfo{7, std::string(255, 'n'), "a7:1", "", 1};
  fits.httpAddress = std::string(255, 'h');
  capnp::MallocMessageBuilder message;
  encodeMember(fits, message.initRoot<wire::Member>());
  CHECK(decodeMember(message.getRoot<wire::Member>().asReader()) == fits);
}

TEST_CASE("codec: a gossip record's HTTP address travels, and an oversized one is refused") {
  Member member;
  member.info = NodeInfo{7, "n7", "a7:1", "z", 1};
  member.httpAddress = "a7:7480";
  capnp::MallocMessageBuilder message;
  auto wire = message.initRoot<wire::Member>();
  encodeMember(member, wire);
  CHECK(decodeMember(wire.asReader()).httpAddress == "a7:7480");
  wire.setHttpAddress(std::string(256, 'h'));
  CHECK_THROWS_WITH(decodeMember(wire.asReader()),
                    Catch::Contains("member http address is 256 bytes; the limit is 255"));
}

TEST_CASE("codec: a gossip record or map with a NUL byte in a text field is refused") {
  // Found by gossip-fuzz: the decoder kept "a7\0x" whole, the encoder (through c_str()) sent
  // "a7" on, so the record read differently on each side of a hop.
  capnp::Text::Reader withNul("a7\0x", 4);
  for (int field = 0; field < 4; field++) {
    Member member;
    member.info = NodeInfo{7, "n7", "a7:1", "z", 1};
    capnp::MallocMessageBuilder message;
    auto wire = message.initRoot<wire::Member>();
    encodeMember(member, wire);
    auto info = wire.getInfo();
    field == 0   ? info.setName(withNul)
    : field == 1 ? info.setAddress(withNul)
    : field == 2 ? info.setZone(withNul)
                 : wire.setHttpAddress(withNul);
    CHECK_THROWS_WITH(decodeMember(wire.asReader()), Catch::Contains("holds a NUL byte"));
    if (field == 3) continue;

    auto map = PartitionMap::fromParts(3, 1, {NodeInfo{7, "n7", "a7:1", "z", 1}}, {0, 0});
    REQUIRE(map);
    capnp::MallocMessageBuilder mapMessage;
    auto wireMap = mapMessage.initRoot<wire::PartitionMap>();
    encodePartitionMap(*map, wireMap);
    auto node = wireMap.getNodes()[0];
    field == 0   ? node.setName(withNul)
    : field == 1 ? node.setAddress(withNul)
                 : node.setZone(withNul);
    CHECK_THROWS_WITH(decodePartitionMap(wireMap.asReader()), Catch::Contains("holds a NUL byte"));
  }
}

TEST_CASE("codec: a last-write-wins version decodes with the zero dot, its canonical form") {
  // Found by object-fuzz: a dot sent with a last-write-wins version was kept, so the object
  // differed from its own sync (which zeroes it), on each replica that held it.
  Object object = lastWriteWinsObject(std::string("v"), 10);
  object.siblings[0].dot = Dot{Actor{3, 1}, 5};
  auto decoded = objectFromBytes(objectToWords(object).asBytes(), Limits());
  CHECK(decoded == lastWriteWinsObject(std::string("v"), 10));
  CHECK(sync(decoded, decoded) == decoded);
}

}  // namespace
}  // namespace dynkv
