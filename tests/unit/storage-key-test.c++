// Storage keys: the byte layout that keeps a partition one contiguous range.
#include <catch2/catch.hpp>

#include "storage-key.h"

namespace dynkv::storaged {
namespace {

TEST_CASE("storage key: keys keep a partition contiguous and round-trip") {
  StorageKey k{0x1234, "ns", std::string("a\0b", 3)};
  auto bytes = encodeStorageKey(k);
  CHECK(uint8_t(bytes[0]) == 0x12);
  CHECK(uint8_t(bytes[1]) == 0x34);
  auto back = decodeStorageKey(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size()));
  CHECK(back.partition == k.partition);
  CHECK(back.ns == k.ns);
  CHECK(back.key == k.key);
}

}  // namespace
}  // namespace dynkv::storaged
