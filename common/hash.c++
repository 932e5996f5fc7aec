#include "hash.h"

// xxhash.h includes the C headers inside extern "C"; pull in their C++ forms first.
#include <cassert>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

namespace dynkv {

uint64_t hash64(std::string_view bytes) { return XXH3_64bits(bytes.data(), bytes.size()); }

uint64_t keyHash(std::string_view ns, std::string_view key) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  unsigned char len = static_cast<unsigned char>(ns.size());
  XXH3_64bits_update(&state, &len, 1);
  XXH3_64bits_update(&state, ns.data(), ns.size());
  XXH3_64bits_update(&state, key.data(), key.size());
  return XXH3_64bits_digest(&state);
}

}  // namespace dynkv
