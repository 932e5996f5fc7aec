#include "config.h"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace dynkv::storaged {

namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

uint64_t parseNumber(const std::string& name, const std::string& value) {
  try {
    size_t used = 0;
    uint64_t n = std::stoull(value, &used);
    if (used != value.size()) throw std::invalid_argument("trailing characters");
    return n;
  } catch (const std::exception&) {
    throw std::invalid_argument(name + ": '" + value + "' is not a number");
  }
}

void apply(Config& config, const std::string& name, const std::string& value) {
  if (name == "data-dir") {
    config.dataDir = value;
  } else if (name == "listen") {
    config.listen = value;
  } else if (name == "advertise") {
    config.advertise = value;
  } else if (name == "seeds") {
    config.seeds = splitList(value);
  } else if (name == "cluster") {
    config.cluster = value;
  } else if (name == "secret") {
    config.secret = value;
  } else if (name == "engine") {
    if (value != "lmdb" && value != "memory") {
      throw std::invalid_argument("engine: expected lmdb or memory, got '" + value + "'");
    }
    config.engine = value;
  } else if (name == "durability") {
    if (value == "sync") {
      config.durability = Durability::SYNC;
    } else if (value == "buffered") {
      config.durability = Durability::BUFFERED;
    } else {
      throw std::invalid_argument("durability: expected sync or buffered, got '" + value + "'");
    }
  } else if (name == "map-size") {
    config.mapSizeBytes = parseNumber(name, value);
  } else if (name == "partition-bits") {
    config.partitionBits = uint32_t(parseNumber(name, value));
    if (config.partitionBits < 1 || config.partitionBits > 16) {
      throw std::invalid_argument("partition-bits: must be 1..16");
    }
  } else if (name == "zone") {
    config.zone = value;
  } else if (name == "weight") {
    config.weight = uint32_t(parseNumber(name, value));
    if (config.weight < 1 || config.weight > 1000) {
      throw std::invalid_argument("weight: must be 1..1000");
    }
  } else if (name == "replicas") {
    config.replicas = uint32_t(parseNumber(name, value));
    if (config.replicas < 1 || config.replicas > 64) {
      throw std::invalid_argument("replicas: must be 1..64");
    }
  } else if (name == "transfer-rate") {
    config.transferBytesPerSecond = parseNumber(name, value);
  } else if (name == "gossip-interval-ms") {
    config.gossipIntervalMillis = uint32_t(parseNumber(name, value));
    if (config.gossipIntervalMillis < 10) {
      throw std::invalid_argument("gossip-interval-ms: at least 10");
    }
  } else if (name == "anti-entropy-interval-ms") {
    config.antiEntropyIntervalMillis = uint32_t(parseNumber(name, value));
    if (config.antiEntropyIntervalMillis < 100) {
      throw std::invalid_argument("anti-entropy-interval-ms: at least 100");
    }
  } else if (name == "admission") {
    if (value != "on" && value != "off") {
      throw std::invalid_argument("admission: expected on or off, got '" + value + "'");
    }
    config.admission.enabled = value == "on";
  } else if (name == "admission-target-ms") {
    uint64_t millis = parseNumber(name, value);
    if (millis < 1 || millis > 60000) {
      throw std::invalid_argument("admission-target-ms: must be 1..60000");
    }
    config.admission.targetMicros = int64_t(millis) * 1000;
  } else if (name == "admission-max-slots") {
    uint64_t slots = parseNumber(name, value);
    if (slots < 1 || slots > 1024) {
      throw std::invalid_argument("admission-max-slots: must be 1..1024");
    }
    config.admission.maxSlots = uint32_t(slots);
  } else if (name == "max-key-bytes") {
    config.limits.maxKeyBytes = uint32_t(parseNumber(name, value));
  } else if (name == "max-value-bytes") {
    config.limits.maxValueBytes = uint32_t(parseNumber(name, value));
    if (config.limits.maxValueBytes > (64u << 20)) {
      throw std::invalid_argument("max-value-bytes: at most 64 MiB");
    }
  } else {
    throw std::invalid_argument("unknown setting '" + name + "'\n" + usage());
  }
}

void readFile(Config& config, const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read config file '" + path + "'");
  std::string line;
  int lineNo = 0;
  while (std::getline(in, line)) {
    lineNo++;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      throw std::invalid_argument(path + ":" + std::to_string(lineNo) +
                                  ": expected 'name = value'");
    }
    apply(config, trim(line.substr(0, eq)), trim(line.substr(eq + 1)));
  }
}

}  // namespace

std::string usage() {
  return "usage: storaged --data-dir DIR --listen HOST:PORT [--seeds HOST:PORT,...]\n"
         "                [--config FILE] [--advertise HOST:PORT] [--cluster NAME]\n"
         "                [--secret S] [--engine lmdb|memory] [--durability sync|buffered]\n"
         "                [--map-size BYTES] [--partition-bits B]\n"
         "                [--max-key-bytes N] [--max-value-bytes N]\n"
         "                [--zone Z] [--weight W] [--replicas N] [--transfer-rate BYTES_PER_S]\n"
         "                [--gossip-interval-ms MS] [--anti-entropy-interval-ms MS]\n"
         "                [--admission on|off]\n"
         "                [--admission-target-ms MS] [--admission-max-slots N]\n"
         "A new node starts as 'joining': `dynkv admin join HOST:PORT` adds it to the ring.\n";
}

Config parseConfig(int argc, char** argv) {
  Config config;
  std::vector<std::pair<std::string, std::string>> flags;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") throw std::invalid_argument(usage());
    if (arg.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + arg + "'\n" + usage());
    std::string name = arg.substr(2), value;
    auto eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (i + 1 >= argc) throw std::invalid_argument("--" + name + " needs a value");
      value = argv[++i];
    }
    flags.emplace_back(name, value);
  }
  for (auto& [name, value] : flags) {
    if (name == "config") readFile(config, value);
  }
  for (auto& [name, value] : flags) {
    if (name != "config") apply(config, name, value);
  }
  if (config.engine == "lmdb" && config.dataDir.empty()) {
    throw std::invalid_argument("--data-dir is required\n" + usage());
  }
  if (config.advertise.empty()) config.advertise = config.listen;
  return config;
}

}  // namespace dynkv::storaged
