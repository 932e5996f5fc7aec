// How a namespace versions its values. Shared by the SDK's public API and the core.
#pragma once

#include <cstdint>

namespace dynkv {

enum class NamespaceKind : uint8_t {
  VECTOR_CLOCK = 0,
  // Dotted version vectors: concurrent writes become siblings that the application
  // resolves; each write goes through a coordinator replica (two round trips).

  LAST_WRITE_WINS = 1,
  // One version per key; the highest (timestamp, value) wins. The client timestamps and
  // coordinates the write itself in one round trip. Concurrent writes are silently lost,
  // as with Cassandra's cells: use it only where that is acceptable.
};

}  // namespace dynkv
