// The compact encodings of anti-entropy's lists (DESIGN.md, "Anti-entropy"; schema/dynkv.capnp,
// Peer.ae*): what an exchange sends per key, per segment or per tree node is a few bytes, and a
// Cap'n Proto list of structs spends more than that on each element's layout (pointers, padding,
// a word per struct), so each list travels as one `Data` blob instead: varints (LEB128), keys
// prefix-compressed against the key before them (they are listed in order, and keys of one
// partition share their first bytes), actors named once per blob in a table and then by index,
// timestamps as differences from the one before. A 100-byte object costs about 130 bytes,
// against about 240 as a packed Cap'n Proto message in a list of structs.
//
// Every decoder reads bytes from a peer: it checks each count and length against the limit
// that applies (Limits in common/limits.h, the caller's maximum number of entries) before
// allocating anything, and against the bytes left; throws a kj::Exception (FAILED) naming the
// limit or the defect, and never returns a partial result. Objects come back in canonical form
// and are checked as decodeObject() (common/codec.h) checks them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dvv.h"
#include "limits.h"
#include "merkle-tree.h"

namespace dynkv {

size_t maxStorageKeyBytes(const Limits& limits);
// The longest storage key (storaged/storage-key.h) a key within `limits` makes: 2 bytes of
// partition, 1 of namespace length, the namespace and the key.

std::string encodePartitions(const std::vector<uint32_t>& partitions);
std::vector<uint32_t> decodePartitions(std::string_view bytes, size_t maxPartitions);
// A list of partitions (each < 2^16), in its order: as a bitmap over [first, last] when the
// list is ascending and that is smaller (an exchange's batch is usually most partitions a node
// holds), else as varint differences. Decoding refuses more than maxPartitions.

std::string encodeTreeNodes(const std::vector<TreeNodeRef>& nodes);
std::vector<TreeNodeRef> decodeTreeNodes(std::string_view bytes, size_t maxNodes,
                                         TreeShape shape);
// ASK_CHILDREN's nodes, in order. Decoding refuses more than maxNodes, a partition >= 2^16, and
// a node that is not above the segments of a tree of `shape` (its levels and widths).

std::string encodeSegments(const std::vector<SegmentRef>& segments);
std::vector<SegmentRef> decodeSegments(std::string_view bytes, size_t maxSegments,
                                       TreeShape shape);
// LIST_KEYS's segments, in order. Decoding refuses more than maxSegments, a partition >= 2^16
// and a segment >= shape.segments().

std::string encodeKeyDigests(const std::vector<KeyDigest>& keys);
std::vector<KeyDigest> decodeKeyDigests(std::string_view bytes, size_t maxKeys,
                                        const Limits& limits);
// A listing: each key with its digest and causal summary, in order. Decoding refuses more
// than maxKeys, a key longer than maxStorageKeyBytes(limits), and a version vector of more
// than 4 * VersionVector::MAX_ENTRIES actors (what decodeVersionVector accepts).

std::string encodeKeys(const std::vector<std::string>& keys);
std::vector<std::string> decodeKeys(std::string_view bytes, size_t maxKeys, const Limits& limits);
// Storage keys, in order (a fetch). Limits as above.

struct KeyObject {
  std::string key;               // the encoded storage key
  std::optional<Object> object;  // nullopt: the sender holds no copy

  bool operator==(const KeyObject& o) const { return key == o.key && object == o.object; }
};

std::string encodeEntries(const std::vector<KeyObject>& entries);
std::vector<KeyObject> decodeEntries(std::string_view bytes, size_t maxEntries,
                                     const Limits& limits);
// Keys with their objects (a fetch's reply, a push), in order. Decoding refuses, besides the
// key limits above, more than maxEntries, more than Limits::MAX_SIBLINGS siblings, a value
// over limits.maxValueBytes, and an object decodeObject() would refuse.

size_t encodedSize(const Object& object);
// About what encodeEntries() spends on `object` (for splitting pushes into messages).

}  // namespace dynkv
