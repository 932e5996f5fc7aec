#include "codec.h"

#include <algorithm>
#include <cstring>
#include <capnp/message.h>
#include <capnp/serialize-packed.h>
#include <capnp/serialize.h>
#include <kj/io.h>
#include <kj/debug.h>

namespace dynkv {

namespace {

Actor decodeActor(wire::Actor::Reader a) { return Actor{a.getNode(), a.getEpoch()}; }

void encodeActor(const Actor& a, wire::Actor::Builder out) {
  out.setNode(a.node);
  out.setEpoch(a.epoch);
}

std::string textField(capnp::Text::Reader text, const char* field) {
  // Text on the wire may hold a NUL byte; our strings go back out through c_str() (kj's
  // StringPtr from a std::string, an address given to the resolver), which would cut them
  // there. A record that reads differently on each side of a hop never converges: refuse it.
  KJ_REQUIRE(memchr(text.begin(), 0, text.size()) == nullptr, "text field holds a NUL byte",
             field);
  return std::string(text.begin(), text.size());
}

}  // namespace

capnp::ReaderOptions readerOptionsFor(uint32_t maxValueBytes) {
  capnp::ReaderOptions options;
  uint64_t words = (uint64_t(maxValueBytes) * Limits::MAX_SIBLINGS) / sizeof(capnp::word);
  options.traversalLimitInWords = words + (uint64_t(1) << 20);
  options.nestingLimit = 32;
  return options;
}

wire::NamespaceKind toWire(Versioning kind) {
  return kind == Versioning::LAST_WRITE_WINS ? wire::NamespaceKind::LAST_WRITE_WINS
                                                : wire::NamespaceKind::VECTOR_CLOCK;
}

Versioning fromWire(wire::NamespaceKind kind) {
  switch (kind) {
    case wire::NamespaceKind::VECTOR_CLOCK:
      return Versioning::VECTOR_CLOCK;
    case wire::NamespaceKind::LAST_WRITE_WINS:
      return Versioning::LAST_WRITE_WINS;
  }
  KJ_FAIL_REQUIRE("unknown namespace kind on the wire", uint(kind));
}

void encodeVersionVector(const VersionVector& vv, capnp::List<wire::VvEntry>::Builder out) {
  KJ_ASSERT(out.size() == vv.size());
  uint i = 0;
  for (auto& e : vv.entries()) {
    auto b = out[i++];
    encodeActor(e.actor, b.initActor());
    b.setCounter(e.counter);
    b.setTimestamp(e.timestamp);
  }
}

VersionVector decodeVersionVector(capnp::List<wire::VvEntry>::Reader in) {
  KJ_REQUIRE(in.size() <= MAX_DECODED_VV_ENTRIES, "version vector has too many entries",
             in.size(), MAX_DECODED_VV_ENTRIES);
  VersionVector vv;
  for (auto e : in) {
    Actor actor = decodeActor(e.getActor());
    // A duplicate entry keeps the larger counter: merge() does exactly that.
    VersionVector one;
    one.set(actor, e.getCounter(), e.getTimestamp());
    vv.merge(one);
  }
  return vv;
}

void encodeObject(const Object& object, wire::Object::Builder out) {
  out.setKind(toWire(object.kind));
  encodeVersionVector(object.vv, out.initVv(object.vv.size()));
  auto siblings = out.initSiblings(object.siblings.size());
  for (uint i = 0; i < object.siblings.size(); i++) {
    auto& s = object.siblings[i];
    auto b = siblings[i];
    encodeActor(s.dot.actor, b.getDot().initActor());
    b.getDot().setCounter(s.dot.counter);
    b.setTimestamp(s.timestamp);
    if (s.value) {
      b.setValue(asData(*s.value));
    } else {
      b.setTombstone();
    }
    b.setWriteId(s.writeId);
  }
  auto superseded = out.initSuperseded(object.superseded.size());
  for (uint i = 0; i < object.superseded.size(); i++) {
    superseded[i].setWriteId(object.superseded[i].writeId);
    superseded[i].setTimestamp(object.superseded[i].timestamp);
  }
}

void encodeWriteIds(const std::vector<uint64_t>& ids, capnp::List<uint64_t>::Builder out) {
  for (uint i = 0; i < ids.size(); i++) out.set(i, ids[i]);
}

std::vector<uint64_t> decodeWriteIds(capnp::List<uint64_t>::Reader in) {
  KJ_REQUIRE(in.size() <= Limits::MAX_SIBLINGS, "too many write ids: a context names at most "
             "one per sibling", in.size(), Limits::MAX_SIBLINGS);
  std::vector<uint64_t> ids;
  ids.reserve(in.size());
  for (uint64_t id : in) {
    if (id != 0) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

Object decodeObject(wire::Object::Reader in, const Limits& limits) {
  Object object;
  object.kind = fromWire(in.getKind());
  object.vv = decodeVersionVector(in.getVv());
  auto siblings = in.getSiblings();
  KJ_REQUIRE(siblings.size() <= Limits::MAX_SIBLINGS, "object has too many siblings",
             siblings.size(), Limits::MAX_SIBLINGS);
  object.siblings.reserve(siblings.size());
  for (auto s : siblings) {
    Sibling sibling;
    sibling.dot.actor = decodeActor(s.getDot().getActor());
    sibling.dot.counter = s.getDot().getCounter();
    sibling.timestamp = s.getTimestamp();
    sibling.writeId = s.getWriteId();
    switch (s.which()) {
      case wire::Sibling::VALUE: {
        auto v = s.getValue();
        KJ_REQUIRE(v.size() <= limits.maxValueBytes, "sibling value exceeds maxValueBytes",
                   v.size(), limits.maxValueBytes);
        sibling.value = std::string(asStringView(v));
        break;
      }
      case wire::Sibling::TOMBSTONE:
        break;
      default:
        KJ_FAIL_REQUIRE("sibling is neither a value nor a tombstone");
    }
    object.siblings.push_back(std::move(sibling));
  }
  std::sort(object.siblings.begin(), object.siblings.end(),
            [](const Sibling& a, const Sibling& b) { return a.dot < b.dot; });
  for (size_t i = 1; i < object.siblings.size(); i++) {
    KJ_REQUIRE(object.siblings[i - 1].dot != object.siblings[i].dot,
               "object has two siblings with the same dot");
  }
  if (object.kind == Versioning::LAST_WRITE_WINS) {
    KJ_REQUIRE(object.siblings.size() <= 1 && object.vv.empty(),
               "a last-write-wins object holds at most one version and no version vector");
    // Canonical form: a last-write-wins version has the zero dot (versions are ordered by
    // time). A dot a peer sent anyway would make the same version compare, and digest,
    // differently on each replica, until a sync zeroed it.
    for (auto& s : object.siblings) {
      s.dot = Dot{};
      s.writeId = 0;  // likewise: the last write wins, twins or not
    }
    KJ_REQUIRE(in.getSuperseded().size() == 0,
               "a last-write-wins object names no superseded writes");
  } else {
    for (auto& s : object.siblings) {
      KJ_REQUIRE(object.vv.covers(s.dot), "object's version vector does not cover a sibling");
    }
    auto superseded = in.getSuperseded();
    KJ_REQUIRE(superseded.size() <= Object::MAX_SUPERSEDED,
               "object names too many superseded writes", superseded.size(),
               Object::MAX_SUPERSEDED);
    object.superseded.reserve(superseded.size());
    for (auto w : superseded) {
      KJ_REQUIRE(w.getWriteId() != 0, "a superseded write without an id");
      KJ_REQUIRE(object.superseded.empty() || object.superseded.back().writeId < w.getWriteId(),
                 "superseded writes out of order or repeated");
      object.superseded.push_back(SupersededWrite{w.getWriteId(), w.getTimestamp()});
    }
    for (auto& s : object.siblings) {
      // Canonical form: a superseded write's versions are dropped wherever they meet the record.
      for (auto& w : object.superseded) {
        KJ_REQUIRE(s.writeId != w.writeId, "object holds a version of a write it names superseded");
      }
    }
  }
  return object;
}

std::optional<std::string> checkStorable(const Object& object, const Limits& limits) {
  // The same bounds decodeObject enforces, in the same order; the shape rules (sorted unique
  // dots, a vv covering every sibling) hold for anything built by coordinatePut and sync.
  if (object.vv.size() > MAX_DECODED_VV_ENTRIES) {
    return "invalid argument: the object has " + std::to_string(object.vv.size()) +
           " version-vector entries; the limit is " +
           std::to_string(MAX_DECODED_VV_ENTRIES);
  }
  if (object.siblings.size() > Limits::MAX_SIBLINGS) {
    return "invalid argument: the object has " + std::to_string(object.siblings.size()) +
           " siblings; the limit is " + std::to_string(Limits::MAX_SIBLINGS) +
           " (MAX_SIBLINGS). Read the key, resolve and write with its context.";
  }
  for (auto& s : object.siblings) {
    if (s.value && s.value->size() > limits.maxValueBytes) {
      return "invalid argument: a sibling's value is " + std::to_string(s.value->size()) +
             " bytes; the limit is " + std::to_string(limits.maxValueBytes) +
             " (maxValueBytes)";
    }
  }
  return std::nullopt;
}

kj::Array<capnp::word> objectToWords(const Object& object) {
  capnp::MallocMessageBuilder message;
  encodeObject(object, message.initRoot<wire::Object>());
  return capnp::messageToFlatArray(message);
}

Object objectFromBytes(kj::ArrayPtr<const kj::byte> bytes, const Limits& limits) {
  KJ_REQUIRE(bytes.size() % sizeof(capnp::word) == 0, "stored object is not a whole message",
             bytes.size());
  kj::Array<capnp::word> copy;
  kj::ArrayPtr<const capnp::word> words;
  if (reinterpret_cast<uintptr_t>(bytes.begin()) % alignof(capnp::word) == 0) {
    words = kj::arrayPtr(reinterpret_cast<const capnp::word*>(bytes.begin()),
                         bytes.size() / sizeof(capnp::word));
  } else {
    copy = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    memcpy(copy.begin(), bytes.begin(), bytes.size());
    words = copy;
  }
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words.size() * 2 + 1024;
  capnp::FlatArrayMessageReader reader(words, options);
  return decodeObject(reader.getRoot<wire::Object>(), limits);
}

kj::Array<kj::byte> objectToPackedBytes(const Object& object) {
  capnp::MallocMessageBuilder message;
  encodeObject(object, message.initRoot<wire::Object>());
  kj::VectorOutputStream out;
  capnp::writePackedMessage(out, message);
  return kj::heapArray(out.getArray());
}

Object objectFromPackedBytes(kj::ArrayPtr<const kj::byte> bytes, const Limits& limits) {
  // Unpacked, a message is at most 8 times its packed size plus the zero runs' expansion: the
  // reader's limits bound what it may allocate, whatever the bytes claim.
  kj::ArrayInputStream in(bytes);
  capnp::PackedMessageReader reader(in, readerOptionsFor(limits.maxValueBytes));
  return decodeObject(reader.getRoot<wire::Object>(), limits);
}

void encodeNodeInfo(const NodeInfo& info, wire::NodeInfo::Builder out) {
  out.setId(info.id);
  out.setName(info.name);
  out.setAddress(info.address);
  out.setZone(info.zone);
  out.setWeight(info.weight);
}

void encodePartitionMap(const PartitionMap& map, wire::PartitionMap::Builder out) {
  out.setVersion(map.version());
  out.setPartitionBits(map.partitionBits());
  auto nodes = out.initNodes(map.nodes().size());
  for (uint i = 0; i < map.nodes().size(); i++) encodeNodeInfo(map.nodes()[i], nodes[i]);
  auto owners = out.initOwners(map.owners().size());
  for (uint i = 0; i < map.owners().size(); i++) owners.set(i, map.owners()[i]);
}

PartitionMap decodePartitionMap(wire::PartitionMap::Reader in) {
  auto wireNodes = in.getNodes();
  KJ_REQUIRE(wireNodes.size() <= PartitionMap::MAX_NODES, "partition map has too many nodes");
  std::vector<NodeInfo> nodes;
  nodes.reserve(wireNodes.size());
  for (auto n : wireNodes) {
    NodeInfo info;
    info.id = n.getId();
    info.name = textField(n.getName(), "name");
    info.address = textField(n.getAddress(), "address");
    info.zone = textField(n.getZone(), "zone");
    info.weight = n.getWeight();
    nodes.push_back(std::move(info));
  }
  auto wireOwners = in.getOwners();
  std::vector<uint16_t> owners;
  owners.reserve(wireOwners.size());
  for (auto owner : wireOwners) owners.push_back(owner);
  std::string error;
  auto map = PartitionMap::fromParts(in.getVersion(), in.getPartitionBits(), std::move(nodes),
                                     std::move(owners), &error);
  if (!map) KJ_FAIL_REQUIRE("invalid partition map", error);
  return std::move(*map);
}

void encodeMember(const Member& m, wire::Member::Builder out) {
  encodeNodeInfo(m.info, out.initInfo());
  out.setStatus(static_cast<wire::MemberStatus>(m.status));
  out.setStatusVersion(m.statusVersion);
  out.setGeneration(m.generation);
  out.setHeartbeat(m.heartbeat);
  out.setMapVersion(m.mapVersion);
  out.setPendingTransfers(m.pendingTransfers);
  auto hinted = out.initHandoffPartitions(uint32_t(m.handoffPartitions.size()));
  for (uint32_t i = 0; i < hinted.size(); i++) hinted.set(i, uint16_t(m.handoffPartitions[i]));
  out.setHandoffEverywhere(m.handoffEverywhere);
  out.setHttpAddress(m.httpAddress);
}

Member decodeMember(wire::Member::Reader in) {
  Member m;
  auto info = in.getInfo();
  m.info.id = info.getId();
  m.info.name = textField(info.getName(), "name");
  m.info.address = textField(info.getAddress(), "address");
  m.info.zone = textField(info.getZone(), "zone");
  m.info.weight = info.getWeight();
  KJ_REQUIRE(m.info.id != 0, "member record without a node id");
  if (auto problem = checkNodeInfo(m.info)) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str()), m.info.id));
  }
  KJ_REQUIRE(m.info.weight >= 1, "member record with weight 0");
  auto status = uint16_t(in.getStatus());
  KJ_REQUIRE(status <= uint16_t(MemberStatus::REMOVED), "unknown member status", status);
  m.status = static_cast<MemberStatus>(status);
  m.statusVersion = in.getStatusVersion();
  m.generation = in.getGeneration();
  m.heartbeat = in.getHeartbeat();
  m.mapVersion = in.getMapVersion();
  m.pendingTransfers = in.getPendingTransfers();
  auto hinted = in.getHandoffPartitions();
  KJ_REQUIRE(hinted.size() <= Member::MAX_HANDOFF_PARTITIONS,
             "member record names more hinted partitions than a record may", hinted.size(),
             Member::MAX_HANDOFF_PARTITIONS);
  m.handoffPartitions.reserve(hinted.size());
  for (auto p : hinted) {
    KJ_REQUIRE(m.handoffPartitions.empty() || p > m.handoffPartitions.back(),
               "member record's hinted partitions are not ascending");
    m.handoffPartitions.push_back(p);
  }
  m.handoffEverywhere = in.getHandoffEverywhere();
  auto http = in.getHttpAddress();
  if (auto problem = checkNodeField("http address", http.size())) {
    kj::throwFatalException(KJ_EXCEPTION(FAILED, kj::str(problem->c_str()), m.info.id));
  }
  m.httpAddress = textField(http, "http address");
  return m;
}

}  // namespace dynkv
