// storaged's settings: from the command line and an optional TOML config file.
//
// Every setting has a flag (`--replicas 3`) and a config-file key of the same name
// (`replicas = 3`). Parsing is pure — no process state is read or changed besides reading the
// file that --config names — so tests exercise it without starting storaged.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "admission-controller.h"
#include "engine.h"
#include "limits.h"

namespace dynkv::storaged {

struct ConnectionLimits {
  // Bounds on the RPC listener's connections; storaged keeps serving past them, refusing.
  uint32_t maxConnections = 10000;  // lowered at start to fit the descriptor limit
  uint32_t maxPerAddress = 1000;    // from one peer IP address; 0: no limit
  uint32_t handshakeTimeoutMillis = 10000;  // to authenticate after connecting
  uint32_t maxHandshakes = 4096;    // spoken, not yet authenticated; past it the oldest closes
  uint32_t idleTimeoutMillis = 0;   // no traffic either way; 0: never closed for it
  uint64_t maxBufferedBytes = 4 << 20;  // answers unread by a peer before its requests wait
  uint32_t slowReaderTimeoutMillis = 30000;  // a peer throttled so long is cut off
  uint64_t maxRequestBytesInFlight = 16 << 20;  // requests read and not yet answered
};

struct Config {
  std::string dataDir;               // required unless engine == "memory"
  std::string listen = "127.0.0.1:7400";
  std::string advertise;             // the address peers and clients use; default `listen`
  std::vector<std::string> seeds;    // HOST:PORT of other nodes
  std::string http;                  // HOST:PORT for /metrics and the status page; empty: none
  std::string cluster = "dynkv";
  std::string secret;
  std::string tlsCa;                 // the three TLS files (net/tls.h); all empty: plain TCP
  std::string tlsCert;
  std::string tlsKey;
  std::string engine = "lmdb";       // lmdb | memory
  std::string logLevel = "info";     // info | warning | error: the least severe logged
  Durability durability = Durability::SYNC;
  uint64_t mapSizeBytes = uint64_t(16) << 30;
  uint32_t partitionBits = 10;        // Q = 2^bits, fixed when the cluster is created
  std::string zone;                   // rack or data centre, for replica placement
  uint32_t weight = 1;                // relative capacity: share of partitions
  uint32_t replicas = 3;              // the cluster's default N: what a node holds copies of
  uint64_t transferBytesPerSecond = 32 << 20;  // partition streaming rate limit; 0: none
  uint32_t gossipIntervalMillis = 1000;
  uint32_t antiEntropyIntervalMillis = 10000;  // between two rounds of exchanges
  AdmissionOptions admission;         // background work's slots (storaged/admission.h)
  Limits limits;
  ConnectionLimits connections;       // what peers may make the node spend (net/accept-loop.h)
};

struct ConfigError : std::invalid_argument {
  // A setting that cannot be used, in the user's terms: the flag, or the file and line, the
  // value given and what is accepted. Never contains the secret.
  using std::invalid_argument::invalid_argument;
};

struct Exit {
  // The command line is answered without running the node: print `text` (to stdout when
  // `code` is 0, else to stderr) and exit with `code`.
  int code;
  std::string text;
};

static constexpr int USAGE_EXIT_CODE = 2;

std::variant<Config, Exit> parseCommandLine(int argc, const char* const* argv);
// storaged's command line. Returns the configuration to run with: the defaults, then the file
// that `--config FILE` names (parseConfigToml), then every other flag given, which wins (given
// twice, the last one counts). `advertise` defaults to `listen`.
//
// Returns an Exit instead for
// - `-h`/`--help` (every flag with its meaning and default), `--version` (the version and the
//   git revision the build was configured from), `--print-config` (toTomlConfig of the
//   effective configuration): code 0;
// - a usage error — an unknown flag, a missing value, a value not a number or out of its
//   range (never wrapped), a bad or unreadable config file, no --data-dir for lmdb: code 2,
//   `text` naming the flag or the file and line.

Config parseConfigToml(std::string_view text, std::string_view sourceName, Config base = {});
// Applies the TOML document `text` over `base` and returns the result. Keys are the long flags'
// names without dashes; strings are taken exactly as written, `seeds` is an array of strings,
// `admission` is "on"/"off" or a boolean. Throws ConfigError, naming `sourceName` and the line,
// on a syntax error, an unknown key, a value of the wrong type or out of its range. Does not
// default `advertise` or check --data-dir (parseCommandLine does, after the flags).

std::string toTomlConfig(const Config& config);
// `config` as a TOML document, every setting by its key, that parseConfigToml reads back to
// the same Config — except the secret, which is never printed: a comment says whether one is
// set.

std::string usage();
// The text of --help.

}  // namespace dynkv::storaged
