// Conversions between the core's value types and the wire schema. Everything decoded here
// came from a peer or from disk, so it is validated: a malformed object is rejected with a
// kj::Exception (FAILED) that says what was wrong, never half-used.
#pragma once

#include <capnp/common.h>
#include <capnp/message.h>
#include <kj/array.h>
#include <optional>
#include <string>
#include <string_view>

#include "dvv.h"
#include "limits.h"
#include "membership-state.h"
#include "partition-map.h"
#include "dynkv.capnp.h"

namespace dynkv {

void encodeVersionVector(const VersionVector& vv, capnp::List<wire::VvEntry>::Builder out);
// `out` must have been initialised with vv.size() elements.

constexpr size_t MAX_DECODED_VV_ENTRIES = 4 * VersionVector::MAX_ENTRIES;
// The most version-vector entries a decoder accepts. coordinatePut truncates to MAX_ENTRIES, but
// sync() does not truncate, so merged replicas may legitimately hold a few more.

VersionVector decodeVersionVector(capnp::List<wire::VvEntry>::Reader in);
// Sorted and de-duplicated (keeping the larger counter); rejects more than
// MAX_DECODED_VV_ENTRIES.

void encodeObject(const Object& object, wire::Object::Builder out);

void encodeWriteIds(const std::vector<uint64_t>& ids, capnp::List<uint64_t>::Builder out);
// `out` must have been initialised with ids.size() elements.
std::vector<uint64_t> decodeWriteIds(capnp::List<uint64_t>::Reader in);
// A context's write ids (WriteContext::writeIds): at most Limits::MAX_SIBLINGS, returned
// sorted, unique and without 0.

Object decodeObject(wire::Object::Reader in, const Limits& limits);
// Validates value sizes against `limits`, the sibling count, and the LWW shape; returns the
// object in canonical form.

std::optional<std::string> checkStorable(const Object& object, const Limits& limits);
// nullopt when decodeObject would accept `object` once encoded, else a message naming the
// limit it breaks ("invalid argument: the object has 41 version-vector entries; the limit is
// 40"). Every path that stores an object asks this first: an object stored past a limit could
// never be read back, and the key would be lost.

kj::Array<capnp::word> objectToWords(const Object& object);
// A standalone Cap'n Proto message (flat array), as stored in the engine.

Object objectFromBytes(kj::ArrayPtr<const kj::byte> bytes, const Limits& limits);
// Reads a message written by objectToWords, copying it first if it is not word-aligned.

void encodeMember(const Member& member, wire::Member::Builder out);
Member decodeMember(wire::Member::Reader in);
// Gossip records; decode rejects a record without a node id, with weight 0, an unknown
// status, or a name, address or zone over NodeInfo::MAX_FIELD_BYTES.

kj::Array<kj::byte> objectToPackedBytes(const Object& object);
Object objectFromPackedBytes(kj::ArrayPtr<const kj::byte> bytes, const Limits& limits);
// An object as a packed Cap'n Proto message (zero bytes run-length coded): what anti-entropy
// sends, where the object's structure would otherwise cost as much as a small value. Reading
// throws (FAILED) on malformed bytes or an object over `limits`.

void encodeNodeInfo(const NodeInfo& info, wire::NodeInfo::Builder out);

void encodePartitionMap(const PartitionMap& map, wire::PartitionMap::Builder out);
PartitionMap decodePartitionMap(wire::PartitionMap::Reader in);

inline std::string_view asStringView(capnp::Data::Reader data) {
  return std::string_view(reinterpret_cast<const char*>(data.begin()), data.size());
}
inline capnp::Data::Reader asData(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

capnp::ReaderOptions readerOptionsFor(uint32_t maxValueBytes);
// RPC receive limits: room for an object at the sibling limit, and no more.

wire::NamespaceKind toWire(Versioning kind);
Versioning fromWire(wire::NamespaceKind kind);

}  // namespace dynkv
