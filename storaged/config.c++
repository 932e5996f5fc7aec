#include "config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <sstream>
#include <kj/debug.h>

// toml++ uses CHAR_BIT from <climits>, but <climits> includes <limits.h>, which is our own
// common/limits.h on this target's include path, so the C library's is never read. The
// compiler's own definition stands in.
#ifndef CHAR_BIT
#define CHAR_BIT __CHAR_BIT__
#endif
#include <toml++/toml.h>

#include "command-line-parse.h"
#include "dynkv-version.h"
#include "protocol-version.h"

namespace dynkv::storaged {

namespace {

// ---- the settings: one table drives the flags, the file's keys, --help and --print-config ----

enum class Kind { TEXT, CHOICE, NUMBER, LIST };
using Value = std::variant<std::string, uint64_t, std::vector<std::string>>;

struct Setting {
  std::string name;       // the long flag without its dashes, and the file's key
  std::string valueName;  // how --help shows the value: DIR, HOST:PORT, MS, ...
  std::string meaning;    // for --help and --print-config
  Kind kind;
  std::vector<std::string> choices;  // CHOICE: the accepted words
  uint64_t min = 0;                  // NUMBER: the accepted range, inclusive; every bound
  uint64_t max = 0;                  // fits TOML's signed 64-bit integers
  std::function<Value(const Config&)> get;
  std::function<void(Config&, const Value&)> set;
};

const std::string& textOf(const Value& v) { return std::get<std::string>(v); }
uint64_t numberOf(const Value& v) { return std::get<uint64_t>(v); }

Setting text(std::string name, std::string valueName, std::string meaning,
             std::string Config::*field) {
  return {name, valueName, meaning, Kind::TEXT, {}, 0, 0,
          [field](const Config& c) { return Value(c.*field); },
          [field](Config& c, const Value& v) { c.*field = textOf(v); }};
}

// `field` is a generic lambda naming the Config member, for reading and for writing it.
template <typename Field>
Setting number(std::string name, std::string valueName, std::string meaning, uint64_t min,
               uint64_t max, Field field) {
  using T = std::remove_reference_t<decltype(field(std::declval<Config&>()))>;
  return {name, valueName, meaning, Kind::NUMBER, {}, min, max,
          [field](const Config& c) { return Value(uint64_t(field(c))); },
          [field](Config& c, const Value& v) { field(c) = T(numberOf(v)); }};
}

Setting choice(std::string name, std::string meaning, std::vector<std::string> choices,
               std::function<std::string(const Config&)> get,
               std::function<void(Config&, const std::string&)> set) {
  std::string valueName;
  for (auto& c : choices) valueName += (valueName.empty() ? "" : "|") + c;
  return {name, valueName, meaning, Kind::CHOICE, choices, 0, 0,
          [get](const Config& c) { return Value(get(c)); },
          [set](Config& c, const Value& v) { set(c, textOf(v)); }};
}

constexpr uint64_t DAY_MILLIS = 24 * 3600 * 1000;

const std::vector<Setting>& settings() {
  // The order of --help and --print-config: where the node is, then its storage, then tuning.
  static const std::vector<Setting> all = {
      text("data-dir", "DIR", "the node's LMDB directory; required unless --engine memory",
           &Config::dataDir),
      text("listen", "HOST:PORT", "address to accept clients and peers on", &Config::listen),
      text("advertise", "HOST:PORT", "address peers and clients reach this node at "
           "(default --listen)", &Config::advertise),
      text("http", "HOST:PORT", "address to serve /metrics and the status page on over HTTP "
           "(default none: no HTTP port)", &Config::http),
      {"seeds", "HOST:PORT,...", "other nodes to find the cluster through by gossip",
       Kind::LIST, {}, 0, 0,
       [](const Config& c) { return Value(c.seeds); },
       [](Config& c, const Value& v) { c.seeds = std::get<std::vector<std::string>>(v); }},
      text("cluster", "NAME", "the cluster's name; a node of another cluster is refused",
           &Config::cluster),
      text("secret", "SECRET", "the cluster's shared secret (default none)", &Config::secret),
      text("tls-ca", "FILE", "the cluster CA's certificate (PEM): with --tls-cert and "
           "--tls-key, every connection is mutual TLS (default none: plain TCP, warned)",
           &Config::tlsCa),
      text("tls-cert", "FILE", "this node's certificate (PEM, CN node:NAME; dynkv admin "
           "certs)", &Config::tlsCert),
      text("tls-key", "FILE", "this node's private key (PEM)", &Config::tlsKey),
      choice("engine", "storage engine (memory: nothing survives a restart; tests only)",
             {"lmdb", "memory"}, [](const Config& c) { return c.engine; },
             [](Config& c, const std::string& v) { c.engine = v; }),
      choice("durability", "sync: fsync before each ack (group-committed); buffered: ack from "
             "memory, flush every few ms", {"sync", "buffered"},
             [](const Config& c) {
               return std::string(c.durability == Durability::SYNC ? "sync" : "buffered");
             },
             [](Config& c, const std::string& v) {
               c.durability = v == "sync" ? Durability::SYNC : Durability::BUFFERED;
             }),
      choice("log-level", "the least severe events written to stderr (info: membership, "
             "transfers, handoff, anti-entropy, refusals; warning: problems only)",
             {"info", "warning", "error"}, [](const Config& c) { return c.logLevel; },
             [](Config& c, const std::string& v) { c.logLevel = v; }),
      number("map-size", "BYTES", "LMDB's map size: the most data the node can hold",
                       uint64_t(1) << 20, uint64_t(1) << 50,
                       [](auto& c) -> auto& { return c.mapSizeBytes; }),
      number("partition-bits", "B", "the ring has 2^B partitions; the same on every "
                       "node, fixed when the cluster is created", 1, 16,
                       [](auto& c) -> auto& { return c.partitionBits; }),
      number("max-key-bytes", "N", "the largest key accepted", 1, 65536,
                       [](auto& c) -> auto& { return c.limits.maxKeyBytes; }),
      number("max-value-bytes", "N", "the largest value accepted", 1, 64 << 20,
                       [](auto& c) -> auto& { return c.limits.maxValueBytes; }),
      text("zone", "ZONE", "rack or data centre: a key's replicas span zones where they can",
           &Config::zone),
      number("weight", "W", "relative capacity: the node's share of partitions",
                       1, 1000, [](auto& c) -> auto& { return c.weight; }),
      number("replicas", "N", "the cluster's N: how many nodes hold each key", 1, 64,
                       [](auto& c) -> auto& { return c.replicas; }),
      number("transfer-rate", "BYTES_PER_S", "partition streaming rate limit "
                       "(0: none)", 0, uint64_t(1) << 40,
                       [](auto& c) -> auto& { return c.transferBytesPerSecond; }),
      number("gossip-interval-ms", "MS", "time between two gossip rounds", 10,
                       DAY_MILLIS,
                       [](auto& c) -> auto& { return c.gossipIntervalMillis; }),
      number("anti-entropy-interval-ms", "MS", "time between two anti-entropy "
                       "rounds", 100, DAY_MILLIS,
                       [](auto& c) -> auto& { return c.antiEntropyIntervalMillis; }),
      choice("admission", "admission control of background work (off: every slot always)",
             {"on", "off"},
             [](const Config& c) { return std::string(c.admission.enabled ? "on" : "off"); },
             [](Config& c, const std::string& v) { c.admission.enabled = v == "on"; }),
      {"admission-target-ms", "MS", "the p99 of storage operations and loop lag that "
       "admission control keeps background work under", Kind::NUMBER, {}, 1, 60000,
       [](const Config& c) { return Value(uint64_t(c.admission.targetMicros / 1000)); },
       [](Config& c, const Value& v) { c.admission.targetMicros = int64_t(numberOf(v)) * 1000; }},
      number("admission-max-slots", "N", "the most background operations at once",
                       1, 1024, [](auto& c) -> auto& { return c.admission.maxSlots; }),
      number("max-connections", "N", "the most RPC connections open at once (lowered to "
             "fit the process's descriptor limit)", 1, 1000000,
             [](auto& c) -> auto& { return c.connections.maxConnections; }),
      number("max-connections-per-address", "N", "the most RPC connections open at once "
             "from one IP address (0: no limit)", 0, 1000000,
             [](auto& c) -> auto& { return c.connections.maxPerAddress; }),
      number("handshake-timeout-ms", "MS", "a connection that has not authenticated this "
             "long after connecting is closed", 100, 600000,
             [](auto& c) -> auto& { return c.connections.handshakeTimeoutMillis; }),
      number("max-handshakes", "N", "connections that have spoken but not yet "
             "authenticated; past it the oldest is closed", 16, 1000000,
             [](auto& c) -> auto& { return c.connections.maxHandshakes; }),
      number("idle-timeout-ms", "MS", "a connection with no traffic this long is closed "
             "(0: never)", 0, DAY_MILLIS,
             [](auto& c) -> auto& { return c.connections.idleTimeoutMillis; }),
      number("max-buffered-bytes", "BYTES", "answers a peer leaves unread past which its "
             "requests are no longer read", 64 << 10, uint64_t(1) << 30,
             [](auto& c) -> auto& { return c.connections.maxBufferedBytes; }),
      number("slow-reader-timeout-ms", "MS", "a peer whose requests wait this long for it "
             "to read its answers is cut off", 100, DAY_MILLIS,
             [](auto& c) -> auto& { return c.connections.slowReaderTimeoutMillis; }),
      number("max-request-bytes-in-flight", "BYTES", "requests read from one connection "
             "and not yet answered, past which no more are read", 1 << 20,
             uint64_t(1) << 32,
             [](auto& c) -> auto& { return c.connections.maxRequestBytesInFlight; }),
  };
  return all;
}

const Setting* find(std::string_view name) {
  for (auto& s : settings()) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// ---- values: from a flag's text or a file's node, checked the same way ----

std::string rangeText(const Setting& s) {
  return std::to_string(s.min) + " to " + std::to_string(s.max);
}

std::string choicesText(const Setting& s) {
  std::string out;
  for (size_t i = 0; i < s.choices.size(); i++) {
    out += (i == 0 ? "" : i + 1 == s.choices.size() ? " or " : ", ") + s.choices[i];
  }
  return out;
}

std::string outOfRange(const Setting& s, std::string_view given) {
  return std::string(given) + " is out of range; it must be " + rangeText(s);
}

// Throws ConfigError (without the flag or file prefix, which the caller adds) unless `v` is
// one of the setting's choices or within its range.
void check(const Setting& s, const Value& v) {
  if (s.kind == Kind::CHOICE) {
    auto& word = textOf(v);
    if (std::find(s.choices.begin(), s.choices.end(), word) == s.choices.end()) {
      throw ConfigError("expected " + choicesText(s) + ", got '" + word + "'");
    }
  } else if (s.kind == Kind::NUMBER) {
    auto n = numberOf(v);
    if (n < s.min || n > s.max) throw ConfigError(outOfRange(s, std::to_string(n)));
  }
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(" \t") - b + 1));
}

Value fromFlagText(const Setting& s, const std::string& text) {
  switch (s.kind) {
    case Kind::TEXT:
    case Kind::CHOICE:
      return text;
    case Kind::LIST: {
      std::vector<std::string> items;
      std::stringstream in(text);
      std::string item;
      while (std::getline(in, item, ',')) {
        item = trim(item);
        if (!item.empty()) items.push_back(item);
      }
      return items;
    }
    case Kind::NUMBER: {
      auto isDigit = [](char c) { return c >= '0' && c <= '9'; };
      bool digits = !text.empty() && std::all_of(text.begin(), text.end(), isDigit);
      bool negative = text.size() > 1 && text[0] == '-' &&
                      std::all_of(text.begin() + 1, text.end(), isDigit);
      // A negative number, or one past 2^64, is refused as out of range: never wrapped.
      if (negative) throw ConfigError(outOfRange(s, text));
      if (!digits) throw ConfigError("'" + text + "' is not a whole number");
      uint64_t n = 0;
      auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (error != std::errc()) throw ConfigError(outOfRange(s, text));
      return n;
    }
  }
  KJ_UNREACHABLE;
}

std::string typeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date or time";
  }
}

Value fromToml(const Setting& s, const toml::node& node) {
  auto wrongType = [&](const char* expected) {
    return ConfigError(std::string(expected) + ", got " + typeName(node.type()));
  };
  switch (s.kind) {
    case Kind::TEXT:
      if (auto str = node.as_string()) return str->get();
      throw wrongType("expected a string");
    case Kind::CHOICE:
      if (auto str = node.as_string()) return str->get();
      // An on/off setting reads as naturally as a TOML boolean.
      if (auto b = node.as_boolean(); b && s.choices == std::vector<std::string>{"on", "off"}) {
        return std::string(b->get() ? "on" : "off");
      }
      throw wrongType(("expected \"" + choicesText(s) + "\" as a string").c_str());
    case Kind::NUMBER:
      if (auto i = node.as_integer()) {
        if (i->get() < 0) throw ConfigError(outOfRange(s, std::to_string(i->get())));
        return uint64_t(i->get());
      }
      throw wrongType("expected a whole number");
    case Kind::LIST:
      if (auto array = node.as_array()) {
        std::vector<std::string> items;
        for (auto& item : *array) {
          auto str = item.as_string();
          if (!str) {
            throw ConfigError("expected an array of strings, got " + typeName(item.type()) +
                              " in it");
          }
          items.push_back(str->get());
        }
        return items;
      }
      throw wrongType("expected an array of strings, e.g. [\"10.0.0.2:7400\"]");
  }
  KJ_UNREACHABLE;
}

std::string where(std::string_view sourceName, const toml::source_region& at) {
  return std::string(sourceName) + ":" + std::to_string(at.begin.line);
}

// ---- the command line ----

std::string versionText() {
  return std::string("storaged ") + DYNKV_VERSION + " (git " + DYNKV_GIT_REVISION + ", " +
         protocolText() + ")";
}

struct CommandLine {
  CLI::App app{"storaged: a dynkv storage node (one per host)", "storaged"};
  std::vector<std::string> flagValues;  // one per settings() entry, as given
  std::vector<CLI::Option*> flags;      // likewise; count() says whether it was given
  std::string configPath;
  bool printConfig = false;

  CommandLine() {
    // Given twice, the last one counts (a launcher appends its caller's flags to its own).
    app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    app.set_version_flag("--version", versionText(), "print the version and git revision");
    app.add_option("--config", configPath,
                   "a TOML file of settings, each key a flag's name (replicas = 3); flags "
                   "given too win")
        ->type_name("FILE");
    app.add_flag("--print-config", printConfig,
                 "print the effective configuration as TOML (the secret left out) and exit");
    Config defaults;
    flagValues.resize(settings().size());
    for (size_t i = 0; i < settings().size(); i++) {
      auto& s = settings()[i];
      // The range and default in words, after the meaning: CLI11's "N=3" reads as an example.
      std::vector<std::string> notes;
      if (s.kind == Kind::NUMBER) notes.push_back(rangeText(s));
      auto defaultText = valueText(s.get(defaults));
      if (s.name != "secret" && !defaultText.empty()) notes.push_back("default " + defaultText);
      auto meaning = s.meaning;
      for (size_t n = 0; n < notes.size(); n++) meaning += (n == 0 ? " (" : "; ") + notes[n];
      if (!notes.empty()) meaning += ")";
      flags.push_back(app.add_option("--" + s.name, flagValues[i], meaning)
                          ->type_name(s.valueName));
    }
    app.footer(
        "Every flag can also be set in the --config file, by a key of the same name:\n"
        "  data-dir = \"/var/lib/dynkv\"\n"
        "  seeds = [\"10.0.0.2:7400\", \"10.0.0.3:7400\"]\n"
        "  replicas = 3\n"
        "A new node starts as 'joining': `dynkv admin join HOST:PORT` adds it to the ring.");
  }

  static std::string valueText(const Value& v) {
    if (auto n = std::get_if<uint64_t>(&v)) return std::to_string(*n);
    if (auto list = std::get_if<std::vector<std::string>>(&v)) {
      std::string out;
      for (auto& item : *list) out += (out.empty() ? "" : ",") + item;
      return out;
    }
    return textOf(v);
  }
};

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The setting or flag `name` is a typo or two away from, if any: "did you mean ...?".
std::string closestName(std::string_view name, bool commandFlagsToo) {
  std::vector<std::string> names;
  for (auto& s : settings()) names.push_back(s.name);
  if (commandFlagsToo) names.insert(names.end(), {"config", "print-config", "version", "help"});
  for (auto& candidate : names) {
    if (editDistance(name, candidate) <= 2) return candidate;
  }
  return "";
}

// A suggestion for the first of the unexpected arguments that looks like a mistyped flag.
std::string flagSuggestion(const std::vector<std::string>& unexpected) {
  for (auto& arg : unexpected) {
    if (arg.rfind("--", 0) != 0) continue;
    auto closest = closestName(arg.substr(2, arg.find('=') - 2), true);
    if (!closest.empty()) return "; did you mean --" + closest + "?";
  }
  return "";
}

Exit usageError(const std::string& message) {
  return {USAGE_EXIT_CODE,
          "storaged: " + message + "\nRun `storaged --help` for every flag and its meaning.\n"};
}

}  // namespace

Config parseConfigToml(std::string_view text, std::string_view sourceName, Config base) {
  toml::table table;
  try {
    table = toml::parse(text, sourceName);
  } catch (const toml::parse_error& e) {
    throw ConfigError(where(sourceName, e.source()) + ": " + std::string(e.description()));
  }
  for (auto&& [key, node] : table) {
    auto* setting = find(key.str());
    if (setting == nullptr) {
      auto closest = closestName(key.str(), false);
      throw ConfigError(where(sourceName, key.source()) + ": unknown key '" +
                        std::string(key.str()) + "'" +
                        (closest.empty() ? "" : "; did you mean '" + closest + "'?"));
    }
    try {
      auto value = fromToml(*setting, node);
      check(*setting, value);
      setting->set(base, value);
    } catch (const ConfigError& e) {
      throw ConfigError(where(sourceName, node.source()) + ": " + setting->name + ": " +
                        e.what());
    }
  }
  return base;
}

std::string toTomlConfig(const Config& config) {
  std::ostringstream out;
  out << "# storaged's effective configuration (storaged --print-config): every key is the\n"
         "# flag of the same name. storaged --config FILE reads it back.\n";
  for (auto& s : settings()) {
    out << "\n# " << s.meaning;
    if (s.kind == Kind::NUMBER) out << " (" << rangeText(s) << ")";
    out << "\n";
    auto value = s.get(config);
    if (s.name == "secret") {
      // Never printed: the output goes to terminals, tickets and version control.
      out << "# secret: " << (config.secret.empty() ? "none" : "set, not shown") << "\n";
      continue;
    }
    // toml++ quotes and escapes strings, so what is printed reads back exactly.
    out << s.name << " = ";
    if (auto n = std::get_if<uint64_t>(&value)) {
      out << toml::value<int64_t>(int64_t(*n));
    } else if (auto list = std::get_if<std::vector<std::string>>(&value)) {
      toml::array array;
      for (auto& item : *list) array.push_back(item);
      out << array;
    } else {
      out << toml::value<std::string>(textOf(value));
    }
    out << "\n";
  }
  return out.str();
}

std::string usage() {
  CommandLine commandLine;
  return commandLine.app.help();
}

std::variant<Config, Exit> parseCommandLine(int argc, const char* const* argv) {
  CommandLine commandLine;
  auto& app = commandLine.app;
  auto parsed = parseArguments(app, argc, argv, versionText());
  if (parsed.done()) return Exit{0, parsed.text};
  if (parsed.outcome == ParsedArguments::Outcome::USAGE) {
    return usageError(parsed.text + flagSuggestion(parsed.unknownFlags));
  }

  Config config;
  try {
    if (!commandLine.configPath.empty()) {
      std::ifstream in(commandLine.configPath);
      if (!in) throw ConfigError("cannot read config file '" + commandLine.configPath + "'");
      std::stringstream text;
      text << in.rdbuf();
      config = parseConfigToml(text.str(), commandLine.configPath, config);
    }
    for (size_t i = 0; i < settings().size(); i++) {
      if (commandLine.flags[i]->count() == 0) continue;
      auto& s = settings()[i];
      try {
        auto value = fromFlagText(s, commandLine.flagValues[i]);
        check(s, value);
        s.set(config, value);
      } catch (const ConfigError& e) {
        throw ConfigError("--" + s.name + ": " + e.what());
      }
    }
    if (config.http.size() > 255) {
      // It travels in the node's gossip record, whose fields are bounded (NodeInfo).
      throw ConfigError("--http: the address is " + std::to_string(config.http.size()) +
                        " bytes; the limit is 255");
    }
    int tlsFiles = !config.tlsCa.empty() + !config.tlsCert.empty() + !config.tlsKey.empty();
    if (tlsFiles != 0 && tlsFiles != 3) {
      throw ConfigError("--tls-ca, --tls-cert and --tls-key go together: name all three for "
                        "TLS, or none for plain TCP");
    }
    if (config.engine == "lmdb" && config.dataDir.empty()) {
      throw ConfigError("--data-dir is required (the node's LMDB directory), unless "
                        "--engine memory");
    }
  } catch (const ConfigError& e) {
    return usageError(e.what());
  }
  if (config.advertise.empty()) config.advertise = config.listen;
  if (commandLine.printConfig) return Exit{0, toTomlConfig(config)};
  return config;
}

}  // namespace dynkv::storaged
