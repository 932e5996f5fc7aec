#include "storage-key.h"

#include <kj/debug.h>

#include "limits.h"

namespace dynkv::storaged {

std::string encodeStorageKey(const StorageKey& key) {
  KJ_REQUIRE(key.partition <= 0xffff, "partition out of range", key.partition);
  KJ_REQUIRE(key.ns.size() <= Limits::MAX_NAMESPACE_BYTES, "namespace too long");
  std::string out;
  out.reserve(3 + key.ns.size() + key.key.size());
  out.push_back(char(key.partition >> 8));
  out.push_back(char(key.partition & 0xff));
  out.push_back(char(key.ns.size()));
  out += key.ns;
  out += key.key;
  return out;
}

StorageKey decodeStorageKey(kj::ArrayPtr<const kj::byte> bytes) {
  KJ_REQUIRE(bytes.size() >= 3, "malformed storage key");
  StorageKey key;
  key.partition = (uint32_t(bytes[0]) << 8) | bytes[1];
  size_t nsLen = bytes[2];
  KJ_REQUIRE(bytes.size() >= 3 + nsLen, "malformed storage key");
  key.ns.assign(reinterpret_cast<const char*>(bytes.begin() + 3), nsLen);
  key.key.assign(reinterpret_cast<const char*>(bytes.begin() + 3 + nsLen),
                 bytes.size() - 3 - nsLen);
  return key;
}

}  // namespace dynkv::storaged
