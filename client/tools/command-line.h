// The dynkv tool's command line, parsed without running anything: what to do and with which
// settings, or what to print and the exit code. Pure — the environment is handed in — so tests
// exercise it without a cluster (tests/unit/dynkv-command-line-test.c++).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace dynkv::cli {

struct Invocation {
  std::string command;  // "get", "put", "del", "ring", "status", "admin join", "admin leave",
                        // "admin remove", "admin inspect", "admin repair",
                        // "admin snapshot", "admin certs", "where", "local up",
                        // "local down"
  std::string key;      // get, put, del, admin inspect, where
  std::string value;    // put; "-": read standard input
  std::string address;  // admin join, leave, remove, inspect: HOST:PORT of the node (checked)
  bool force = false;        // admin remove: always set (the parse refuses it without --force)
  bool evenIfAlive = false;  // admin remove: even if the node asked does not suspect it
  bool all = false;          // status: list removed members too

  std::vector<std::string> seeds;  // --seeds, else $DYNKV_SEEDS, else 127.0.0.1:7400
  std::string cluster = "dynkv";
  std::string secret;              // --secret, else $DYNKV_SECRET; never printed
  std::string tlsCa;               // --tls-ca, else $DYNKV_TLS_CA; likewise the other two.
  std::string tlsCert;             // All empty: plain TCP
  std::string tlsKey;
  std::string ns;
  bool lww = false;
  std::optional<uint32_t> n, r, w;  // absent: the SDK's defaults
  uint32_t timeoutMillis = 2000;   // admin join: how long to wait for the node (30000);
                                   // admin snapshot: for the copy (600000)
  bool timeoutGiven = false;        // data commands leave the SDK's default otherwise
  bool json = false;
  std::string context;              // put, del: the token of the read it supersedes
  std::string node;                 // status, admin repair: ask that node only; admin
                                    // snapshot: the node to copy (required, checked)
  std::string snapshotDir;          // admin snapshot: absolute, on the node's host
  std::optional<uint32_t> partition;  // admin repair

  std::string certsDir;             // admin certs: where to write them
  std::vector<std::string> certNodes;  // admin certs: a certificate for each node named
  std::string certClient = "app";   // admin certs: the client certificate's name
  std::string certAdmin = "admin";  // admin certs: the admin certificate's name
  uint32_t certDays = 825;          // admin certs: validity

  std::string dir;                  // local up, local down
  bool tls = false;                 // local up: mutual TLS, certificates in DIR/certs
  uint32_t nodes = 3;
  std::string host = "127.0.0.1";   // local up: --listen, the address the nodes bind
  uint16_t basePort = 7400;
  std::optional<uint16_t> httpBasePort;  // local up: node K's HTTP port is this + K-1 (0: none);
                                         // unset: basePort + 80
  std::string durability;           // local up: sync | buffered; empty: storaged's default
};

struct Exit {
  // Answered without running a command: print `text` (stdout when `code` is 0, else stderr)
  // and exit with `code`.
  int code;
  std::string text;
};

using Environment = std::function<std::optional<std::string>(const std::string& name)>;

std::variant<Invocation, Exit> parseCommandLine(int argc, const char* const* argv,
                                                const Environment& environment);
// Returns the invocation, or an Exit for
// - `-h`/`--help` of the tool or of a command (every flag of it, its meaning and default, and
//   the exit codes), `--version` (the version and git revision): code 0;
// - a usage error — no command, an unknown command or flag (named), a missing or extra
//   argument, a number that is not one or out of its range (never wrapped): code 2 (USAGE),
//   `text` one line naming what is wrong, then where help is. Never contains the secret.

std::optional<std::string> addressProblem(const std::string& address);
// What is wrong with a node address given on the command line (HOST:PORT, PORT 1 to 65535),
// in one line that quotes it (cut at 64 bytes); nullopt if nothing is.

std::string userMessage(std::string message);
// An error from the SDK, a node or the network in the user's terms, on one line: without kj's
// source locations, stack traces and parameter dumps; an address that cannot be reached reads
// "cannot reach HOST:PORT: REASON".

}  // namespace dynkv::cli
