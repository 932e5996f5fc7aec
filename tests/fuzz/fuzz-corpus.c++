// Writes the generated seeds of the fuzz targets' corpora: `fuzz-corpus DIR` (DIR is
// tests/fuzz/corpus) writes DIR/<target>/gen-* for every target, valid inputs made by the
// production encoders and a few that each decoder must refuse. Run it again after a wire or
// config format change, and commit what changed. Hand-written seeds sit beside these
// (anything not named gen-*), as do inputs a fuzzer found worth keeping.
#include <capnp/message.h>
#include <capnp/serialize.h>
#include <dynkv/types.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "anti-entropy-codec.h"
#include "codec.h"
#include "config.h"
#include "context.h"
#include "gossip.h"
#include "hint-store.h"
#include "read-context.h"
#include "storage-key.h"

namespace {

using namespace dynkv;

std::filesystem::path root;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  auto dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / ("gen-" + name), std::ios::binary) << bytes;
}

template <typename Words>
std::string bytesOf(const Words& words) {
  auto bytes = words.asBytes();
  return std::string(bytes.asChars().begin(), bytes.size());
}

std::string selector(int path, const std::string& input) {
  return std::string(1, char(path)) + input;
}

Object valueObject() {
  Object o;
  o.vv.set(Actor{1, 11}, 2, 1000);
  o.siblings.push_back(Sibling{Dot{Actor{1, 11}, 2}, 1000, std::string("hello")});
  return o;
}

Object siblingsObject() {
  Object o;
  o.vv.set(Actor{1, 11}, 3, 1000);
  o.vv.set(Actor{2, 12}, 1, 1001);
  o.vv.set(Actor{3, 13}, 5, 900);
  o.siblings.push_back(Sibling{Dot{Actor{1, 11}, 3}, 1000, std::string("cart: milk"), 41});
  o.siblings.push_back(Sibling{Dot{Actor{2, 12}, 1}, 1001, std::string("cart: eggs"), 42});
  o.siblings.push_back(Sibling{Dot{Actor{3, 13}, 5}, 900, std::nullopt});
  o.superseded = {SupersededWrite{40, 990}, SupersededWrite{77, 995}};
  return o;
}

Object uncoveredObject() {
  // Refused: the version vector does not cover the sibling.
  Object o = valueObject();
  o.siblings[0].dot.counter = 9;
  return o;
}

void objects() {
  Object lww = lastWriteWinsObject(std::string("last"), 5000);
  std::pair<const char*, Object> cases[] = {{"value", valueObject()},
                                            {"siblings", siblingsObject()},
                                            {"lww", lww},
                                            {"uncovered", uncoveredObject()}};
  for (auto& [name, object] : cases) {
    auto flat = bytesOf(objectToWords(object));
    auto packed = objectToPackedBytes(object);
    write("object-fuzz", std::string("rpc-") + name, selector(0, flat));
    write("object-fuzz", std::string("stored-") + name, selector(1, flat));
    write("object-fuzz", std::string("packed-") + name,
          selector(2, std::string(packed.asChars().begin(), packed.size())));
  }
  auto flat = bytesOf(objectToWords(siblingsObject()));
  write("object-fuzz", "rpc-truncated", selector(0, flat.substr(0, flat.size() / 2)));

  std::vector<KeyObject> entries = {
      {storaged::encodeStorageKey({7, "", "cart"}), siblingsObject()},
      {storaged::encodeStorageKey({7, "ns", "k"}), std::nullopt}};
  write("anti-entropy-codec-fuzz", "entries", selector(0, encodeEntries(entries)));
  write("anti-entropy-codec-fuzz", "keys",
        selector(2, encodeKeys({entries[0].key, entries[1].key})));
  write("anti-entropy-codec-fuzz", "partitions", selector(3, encodePartitions({1, 2, 900})));
}

void contexts() {
  ReadContext empty;
  ReadContext read = contextOf(siblingsObject(), 2);
  write("context-fuzz", "bytes-empty-vv", selector(0, encodeReadContext(empty)));
  write("context-fuzz", "bytes", selector(0, encodeReadContext(read)));
  write("context-fuzz", "token", selector(1, encodeContext(read).token()));
  write("context-fuzz", "token-not-base64", selector(1, "not a token!"));
  auto bytes = encodeReadContext(read);
  write("context-fuzz", "bytes-truncated", selector(0, bytes.substr(0, bytes.size() - 8)));
}

Member member(uint64_t id, MemberStatus status, uint64_t statusVersion) {
  Member m;
  m.info = NodeInfo{id, "n" + std::to_string(id), "a" + std::to_string(id), "rack-a", 1};
  m.status = status;
  m.statusVersion = statusVersion;
  m.generation = 8;
  m.heartbeat = 40;
  m.mapVersion = 1;
  m.handoffPartitions = {3, 17};
  m.httpAddress = "127.0.0.1:7480";
  return m;
}

std::string gossip(const GossipMessage& message) {
  capnp::MallocMessageBuilder builder;
  storaged::encodeGossipMessage(message, builder.initRoot<wire::GossipState>());
  return bytesOf(capnp::messageToFlatArray(builder));
}

void gossips() {
  // gossip-fuzz's local state holds nodes 1, 2 (itself), 3 up and 5 joining.
  MembershipState state;
  for (uint64_t id : {1, 2, 3, 4}) state.merge(member(id, MemberStatus::UP, 2));
  GossipMessage message;
  for (auto& [id, m] : state.members()) message.members.push_back(m);
  message.mapVersion = 1;
  write("gossip-fuzz", "records", gossip(message));
  message.map = state.recomputedMap(6, 1);
  message.mapVersion = message.map->version();
  write("gossip-fuzz", "records-and-map", gossip(message));
  message.members.push_back(member(5, MemberStatus::LEAVING, 4));
  message.members.push_back(member(6, MemberStatus::REMOVED, 1));
  write("gossip-fuzz", "leaving-and-removed", gossip(message));
  message.members[0].info.weight = 0;  // refused: a record with weight 0
  write("gossip-fuzz", "weight-zero", gossip(message));
}

std::string hint(uint64_t owner, const storaged::StorageKey& key, const Object& object) {
  auto stored = storaged::HintStore::storedKey(owner, storaged::encodeStorageKey(key));
  return std::string(1, char(stored.size())) + stored + bytesOf(objectToWords(object));
}

void hints() {
  write("hint-fuzz", "value", hint(3, {7, "", "greeting"}, valueObject()));
  write("hint-fuzz", "siblings", hint(0x0102030405060708, {1023, "carts", "alice"},
                                      siblingsObject()));
  write("hint-fuzz", "lww", hint(2, {0, "clock", "t"}, lastWriteWinsObject(std::nullopt, 9)));
  write("hint-fuzz", "short-key", std::string(1, char(4)) + "abcd" +
                                      bytesOf(objectToWords(valueObject())));
}

void configs() {
  storaged::Config config;
  config.dataDir = "/var/lib/dynkv";
  config.seeds = {"10.0.0.1:7400", "10.0.0.2:7400"};
  config.zone = "rack-a";
  config.secret = "s3cret";
  write("config-fuzz", "printed.toml", storaged::toTomlConfig(config));
  write("config-fuzz", "small.toml",
        "data-dir = \"/tmp/d\"\nreplicas = 3\nseeds = [\"a:1\", \"b:2\"]\nadmission = false\n");
  write("config-fuzz", "unknown-key.toml", "replica = 3\n");
  write("config-fuzz", "wrong-type.toml", "replicas = \"three\"\n");
  write("config-fuzz", "out-of-range.toml", "partition-bits = 99\n");
  write("config-fuzz", "syntax.toml", "[seeds\nlisten = \n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: fuzz-corpus DIR   (DIR: tests/fuzz/corpus)\n";
    return 2;
  }
  root = argv[1];
  objects();
  contexts();
  gossips();
  hints();
  configs();
  return 0;
}
