#include "limits.h"

namespace dynkv {

std::optional<std::string> checkKey(const Limits& limits, std::string_view ns,
                                    std::string_view key) {
  if (key.empty()) return std::string("key is empty; keys must be 1 to ") +
                          std::to_string(limits.maxKeyBytes) + " bytes";
  if (key.size() > limits.maxKeyBytes) {
    return "key is " + std::to_string(key.size()) + " bytes; the limit is " +
           std::to_string(limits.maxKeyBytes) + " bytes (maxKeyBytes)";
  }
  if (ns.size() > Limits::MAX_NAMESPACE_BYTES) {
    return "namespace is " + std::to_string(ns.size()) + " bytes; the limit is " +
           std::to_string(Limits::MAX_NAMESPACE_BYTES) + " bytes";
  }
  return std::nullopt;
}

std::optional<std::string> checkValue(const Limits& limits, std::string_view value) {
  if (value.size() > limits.maxValueBytes) {
    return "value is " + std::to_string(value.size()) + " bytes; the limit is " +
           std::to_string(limits.maxValueBytes) + " bytes (maxValueBytes)";
  }
  return std::nullopt;
}

}  // namespace dynkv
