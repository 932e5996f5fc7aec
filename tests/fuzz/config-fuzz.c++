// libFuzzer target: a storaged config file (TOML), as `storaged --config FILE` reads it
// (parseConfigToml). Refusal is a ConfigError, naming the file and line; anything else thrown
// is a bug. A config accepted must print (--print-config) as a document that reads back to the
// same settings.
#include <string>

#include "config.h"
#include "fuzz-support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv::storaged;
  using dynkv::fuzz::require;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Config config;
  try {
    config = parseConfigToml(text, "fuzz.toml");
  } catch (const ConfigError&) {
    return 0;
  }
  auto printed = toTomlConfig(config);
  Config again;
  try {
    again = parseConfigToml(printed, "printed.toml");
  } catch (const ConfigError& e) {
    fprintf(stderr, "%s\n%s\n", e.what(), printed.c_str());
    require(false, "a printed config reads back");
  }
  again.secret = config.secret;  // never printed
  require(toTomlConfig(again) == printed, "a printed config reads back the same");
  return 0;
}
