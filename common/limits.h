// Size limits on user data. Enforced at the client and again at the server; a violation
// is rejected before anything is stored, with a message naming the limit.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dynkv {

struct Limits {
  uint32_t maxKeyBytes = 1024;           // 1 KiB
  uint32_t maxValueBytes = 1024 * 1024;  // 1 MiB
  static constexpr uint32_t MAX_NAMESPACE_BYTES = 255;
  static constexpr uint32_t MAX_SIBLINGS = 64;
  // A stored object with more concurrent versions than this refuses further blind writes
  // until the application resolves them; it protects the node from unbounded growth.
};

std::optional<std::string> checkKey(const Limits& limits, std::string_view ns,
                                    std::string_view key);
// nullopt when (ns, key) is acceptable, else a message naming the limit that was hit.

std::optional<std::string> checkValue(const Limits& limits, std::string_view value);
// nullopt when the value fits, else a message naming the limit.

}  // namespace dynkv
