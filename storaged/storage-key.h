// Where an object lives in the engine's OBJECTS table (DESIGN.md, "Local storage"): keys are
// ordered partition first, so that one partition is one contiguous range for transfers and
// tree rebuilds, then namespace, then the user's key.
#pragma once

#include <cstdint>
#include <kj/common.h>
#include <string>

namespace dynkv::storaged {

struct StorageKey {
  uint32_t partition = 0;
  std::string ns;
  std::string key;
};

std::string encodeStorageKey(const StorageKey& key);
// [partition: 2 bytes big-endian][namespace length: 1 byte][namespace][key]. Requires
// (KJ_REQUIRE) a partition below 2^16 and a namespace within Limits::MAX_NAMESPACE_BYTES.

StorageKey decodeStorageKey(kj::ArrayPtr<const kj::byte> bytes);
// The inverse of encodeStorageKey. Throws (KJ_REQUIRE) if `bytes` cannot be one.

}  // namespace dynkv::storaged
