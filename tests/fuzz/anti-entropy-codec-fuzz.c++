// libFuzzer target: every decoder of common/anti-entropy-codec.h, which read bytes from peers,
// given arbitrary bytes must refuse them with a kj::Exception or return values that encode
// back to a blob decoding to the same values; never crash, read out of bounds, or allocate
// what the bytes merely claim.
#include <kj/debug.h>
#include <kj/exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "anti-entropy-codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv;
  static const Limits LIMITS;
  if (size == 0) return 0;
  // The first byte picks the decoder; the rest is its input.
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto guard = [](auto&& f) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions(f)) {
      // Refused: what a decoder must do with bytes it cannot read. A round trip that fails is
      // ours, and aborts.
      if (e->getDescription().startsWith("round trip")) abort();
    }
  };
  switch (data[0] % 6) {
    case 0:
      guard([&]() {
        auto v = decodeEntries(bytes, 1024, LIMITS);
        KJ_ASSERT(decodeEntries(encodeEntries(v), 1024, LIMITS) == v, "round trip");
      });
      break;
    case 1:
      guard([&]() {
        auto v = decodeKeyDigests(bytes, 1024, LIMITS);
        KJ_ASSERT(decodeKeyDigests(encodeKeyDigests(v), 1024, LIMITS) == v, "round trip");
      });
      break;
    case 2:
      guard([&]() {
        auto v = decodeKeys(bytes, 1024, LIMITS);
        KJ_ASSERT(decodeKeys(encodeKeys(v), 1024, LIMITS) == v, "round trip");
      });
      break;
    case 3:
      guard([&]() {
        auto v = decodePartitions(bytes, 4096);
        KJ_ASSERT(decodePartitions(encodePartitions(v), 4096) == v, "round trip");
      });
      break;
    case 4:
      guard([&]() {
        auto v = decodeSegments(bytes, 4096, TreeShape());
        KJ_ASSERT(decodeSegments(encodeSegments(v), 4096, TreeShape()) == v, "round trip");
      });
      break;
    case 5:
      guard([&]() {
        auto v = decodeTreeNodes(bytes, 4096, TreeShape());
        KJ_ASSERT(decodeTreeNodes(encodeTreeNodes(v), 4096, TreeShape()) == v, "round trip");
      });
      break;
  }
  return 0;
}
