// libFuzzer target: an object (a DVV set) from bytes a peer or the disk hands us, by each path
// that decodes one in production. The first byte picks the path, the rest is its input:
//   0  an RPC message (put, replicate, a get's answer), read with storaged's ReaderOptions
//      (readerOptionsFor), then decodeObject;
//   1  a stored object (objectFromBytes: the engine's values, hints, transfers);
//   2  a packed object as anti-entropy sends it (objectFromPackedBytes).
// Refusal is fine. An object accepted must be one the rest of the code can live with: within
// the limits (checkStorable agrees), canonical (siblings sorted by dot, unique), the same after
// a round trip through every encoding, and unchanged by a sync with itself.
#include <optional>

#include "codec.h"
#include "fuzz-support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv;
  using namespace dynkv::fuzz;
  static const Limits LIMITS;
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::optional<Object> object;
  switch (data[0] % 3) {
    case 0:
      readAsPeerMessage<wire::Object>(bytes, readerOptionsFor(LIMITS.maxValueBytes),
                                      [&](wire::Object::Reader in) {
                                        object = decodeObject(in, LIMITS);
                                      });
      break;
    case 1:
      refused([&]() { object = objectFromBytes(bytesOf(bytes), LIMITS); });
      break;
    case 2:
      refused([&]() { object = objectFromPackedBytes(bytesOf(bytes), LIMITS); });
      break;
  }
  if (!object) return 0;

  require(!checkStorable(*object, LIMITS), "a decoded object is storable");
  require(object->vv.size() <= MAX_DECODED_VV_ENTRIES, "vv within MAX_DECODED_VV_ENTRIES");
  require(object->siblings.size() <= Limits::MAX_SIBLINGS, "siblings within MAX_SIBLINGS");
  for (size_t i = 1; i < object->siblings.size(); i++) {
    require(object->siblings[i - 1].dot < object->siblings[i].dot, "siblings sorted, unique");
  }
  require(objectFromBytes(objectToWords(*object).asBytes(), LIMITS) == *object,
          "stored round trip");
  require(objectFromPackedBytes(objectToPackedBytes(*object), LIMITS) == *object,
          "packed round trip");
  require(sync(*object, *object) == *object, "sync is idempotent");
  return 0;
}
