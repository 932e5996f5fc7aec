// Stable 64-bit hashing. Every client and node must compute the same partition for a key,
// across versions and platforms, so this never changes once a cluster exists.
#pragma once

#include <cstdint>
#include <string_view>

namespace dynkv {

uint64_t hash64(std::string_view bytes);
// XXH3-64 with seed 0.

uint64_t keyHash(std::string_view ns, std::string_view key);
// The hash that places (namespace, key) on the ring: XXH3-64 over
// [ns length: 1 byte][ns][key], so "a"+"bc" and "ab"+"c" never collide by construction.

}  // namespace dynkv
