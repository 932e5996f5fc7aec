#include "json-output.h"

namespace dynkv::cli {

bool isUtf8(std::string_view bytes) {
  // nlohmann's strict serialiser is the judge: what it accepts is what a JSON reader reads.
  try {
    (void)nlohmann::json(std::string(bytes)).dump();
    return true;
  } catch (const nlohmann::json::type_error&) {
    return false;
  }
}

std::string base64(std::string_view bytes) {
  static const char ALPHABET[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t chunk = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) chunk |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    if (i + 2 < bytes.size()) chunk |= uint32_t(uint8_t(bytes[i + 2]));
    out += ALPHABET[(chunk >> 18) & 63];
    out += ALPHABET[(chunk >> 12) & 63];
    out += i + 1 < bytes.size() ? ALPHABET[(chunk >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? ALPHABET[chunk & 63] : '=';
  }
  return out;
}

void putValues(nlohmann::ordered_json& object, const std::string& field,
               const std::vector<std::string>& values) {
  bool text = true;
  for (auto& v : values) text = text && isUtf8(v);
  auto array = nlohmann::ordered_json::array();
  for (auto& v : values) array.push_back(text ? v : base64(v));
  object[field] = std::move(array);
  // All or none in base64: a reader decodes by one flag, not per item.
  if (!text) object[field + "_base64"] = true;
}

std::string spacedDump(const nlohmann::ordered_json& json) {
  auto replace = nlohmann::json::error_handler_t::replace;
  if (json.is_object()) {
    std::string out = "{";
    bool first = true;
    for (auto& [key, value] : json.items()) {
      out += (first ? "" : ", ") + nlohmann::json(key).dump(-1, ' ', false, replace) + ": " +
             spacedDump(value);
      first = false;
    }
    return out + "}";
  }
  if (json.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < json.size(); i++) out += (i ? ", " : "") + spacedDump(json[i]);
    return out + "]";
  }
  return json.dump(-1, ' ', false, replace);
}

}  // namespace dynkv::cli
