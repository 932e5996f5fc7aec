// JSON the dynkv tool prints: always valid, whatever bytes a value holds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dynkv::cli {

bool isUtf8(std::string_view bytes);
// Whether `bytes` is valid UTF-8, i.e. can be a JSON string as it is.

std::string base64(std::string_view bytes);
// Standard base64 (RFC 4648, with padding).

void putValues(nlohmann::ordered_json& object, const std::string& field,
               const std::vector<std::string>& values);
// Sets object[field] to `values` as JSON strings when every one is valid UTF-8; otherwise to
// every value in base64, and object[field + "_base64"] = true. A reader checks that flag.

std::string spacedDump(const nlohmann::ordered_json& json);
// One line, with ", " and ": " between items (the text form scripts of earlier versions
// matched). Infinity and NaN are printed as null, like nlohmann's own dump.

}  // namespace dynkv::cli
