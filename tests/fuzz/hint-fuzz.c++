// libFuzzer target: a stored hint (storaged/hint-store.h) as the hint store reads it back from
// its table, which a damaged or foreign data directory may fill with anything. The first byte
// is the length of the key (at most what follows), then the key, then the value.
// Refusal is fine. A hint accepted must name its key canonically (the key re-encodes to the
// same bytes) and hold an object within the limits that round-trips through storage.
#include <algorithm>
#include <optional>

#include "codec.h"
#include "fuzz-support.h"
#include "hint-store.h"
#include "storage-key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv;
  using namespace dynkv::fuzz;
  using dynkv::storaged::HintStore;
  static const Limits LIMITS;
  if (size == 0) return 0;
  size_t keyBytes = std::min<size_t>(data[0], size - 1);
  std::string_view key(reinterpret_cast<const char*>(data) + 1, keyBytes);
  std::string_view value(reinterpret_cast<const char*>(data) + 1 + keyBytes,
                         size - 1 - keyBytes);
  std::optional<HintStore::Hint> hint;
  refused([&]() { hint = HintStore::decodeStored(bytesOf(key), bytesOf(value), LIMITS); });
  if (!hint) return 0;

  require(HintStore::storedKey(hint->ownerId, storaged::encodeStorageKey(hint->key)) == key,
          "a hint's key is canonical");
  require(!checkStorable(hint->object, LIMITS), "a hint's object is storable");
  require(objectFromBytes(objectToWords(hint->object).asBytes(), LIMITS) == hint->object,
          "a hint's object round-trips");
  return 0;
}
