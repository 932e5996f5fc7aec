// storaged's settings: flags, a TOML config file, what a bad setting is told, and what
// --help, --version and --print-config answer. No process is started: parsing is pure.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "config.h"

namespace dynkv::storaged {
namespace {

std::variant<Config, Exit> commandLine(std::vector<std::string> args) {
  args.insert(args.begin(), "storaged");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return parseCommandLine(int(argv.size()), argv.data());
}

Config parse(std::vector<std::string> args) {
  auto parsed = commandLine(args);
  if (auto exit = std::get_if<Exit>(&parsed)) FAIL("refused: " << exit->text);
  return std::get<Config>(parsed);
}

// The message of a command line refused as a usage error (exit code 2).
std::string refused(std::vector<std::string> args) {
  auto parsed = commandLine(args);
  REQUIRE(std::holds_alternative<Exit>(parsed));
  auto& exit = std::get<Exit>(parsed);
  CHECK(exit.code == 2);
  return exit.text;
}

// A command line answered without running (--help, --version, --print-config): its stdout.
std::string answered(std::vector<std::string> args) {
  auto parsed = commandLine(args);
  REQUIRE(std::holds_alternative<Exit>(parsed));
  auto& exit = std::get<Exit>(parsed);
  CHECK(exit.code == 0);
  return exit.text;
}

// A config file for one test, removed when it ends.
struct ConfigFile {
  explicit ConfigFile(const std::string& text) {
    char name[] = "/tmp/dynkv-config-test-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~ConfigFile() { unlink(path.c_str()); }
  std::string path;
};

// The ConfigError message parseConfigToml throws for `text`, read as file "node.toml".
std::string tomlError(const std::string& text) {
  try {
    parseConfigToml(text, "node.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  FAIL("accepted: " << text);
  return "";
}

TEST_CASE("config: flags, and a TOML config file whose settings the flags override") {
  ConfigFile file("# a node\n"
                  "data-dir = \"/var/lib/dynkv\"\n"
                  "listen = \"10.0.0.1:7400\"\n"
                  "seeds = [\"10.0.0.2:7400\", \"10.0.0.3:7400\"]\n"
                  "durability = \"buffered\"\n"
                  "zone = \"rack-a\"\n"
                  "replicas = 5\n"
                  "http = \"10.0.0.1:7480\"\n");
  // Flags win wherever they stand, before or after --config.
  auto config = parse({"--listen", "127.0.0.1:9000", "--config", file.path, "--weight=2"});
  CHECK(config.dataDir == "/var/lib/dynkv");
  CHECK(config.listen == "127.0.0.1:9000");
  CHECK(config.advertise == "127.0.0.1:9000");
  CHECK(config.seeds == std::vector<std::string>{"10.0.0.2:7400", "10.0.0.3:7400"});
  CHECK(config.durability == Durability::BUFFERED);
  CHECK(config.zone == "rack-a");
  CHECK(config.replicas == 5);
  CHECK(config.weight == 2);
  CHECK(config.http == "10.0.0.1:7480");
  CHECK(parse({"--data-dir", "d"}).http.empty());  // no HTTP port unless asked for

  // A flag replaces the file's list rather than adding to it; given twice, the last one counts
  // (a launcher appends its caller's flags to its own).
  auto again = parse({"--config", file.path, "--seeds", "h:1, h:2", "--cluster", "a",
                      "--cluster", "b"});
  CHECK(again.seeds == std::vector<std::string>{"h:1", "h:2"});
  CHECK(again.cluster == "b");
}

TEST_CASE("config: admission control is on by default, with a 10 ms target and 8 slots") {
  auto defaults = parse({"--data-dir", "d"});
  CHECK(defaults.admission.enabled);
  CHECK(defaults.admission.targetMicros == 10000);
  CHECK(defaults.admission.minSlots == 1);
  CHECK(defaults.admission.maxSlots == 8);

  auto set = parse({"--data-dir", "d", "--admission", "off", "--admission-target-ms", "25",
                    "--admission-max-slots=32"});
  CHECK_FALSE(set.admission.enabled);
  CHECK(set.admission.targetMicros == 25000);
  CHECK(set.admission.maxSlots == 32);
}

TEST_CASE("config: connection limits have defaults for a storage node, flags and ranges") {
  auto defaults = parse({"--data-dir", "d"});
  CHECK(defaults.connections.maxConnections == 10000);
  CHECK(defaults.connections.maxPerAddress == 1000);
  CHECK(defaults.connections.handshakeTimeoutMillis == 10000);
  CHECK(defaults.connections.maxHandshakes == 4096);
  CHECK(defaults.connections.idleTimeoutMillis == 0);
  CHECK(defaults.connections.maxBufferedBytes == 4 << 20);
  CHECK(defaults.connections.slowReaderTimeoutMillis == 30000);

  auto set = parse({"--data-dir", "d", "--max-connections", "20000",
                    "--max-connections-per-address", "0", "--handshake-timeout-ms", "500",
                    "--idle-timeout-ms", "60000", "--max-buffered-bytes", "1048576",
                    "--slow-reader-timeout-ms", "2000",
                    "--max-request-bytes-in-flight", "2097152"});
  CHECK(set.connections.maxConnections == 20000);
  CHECK(set.connections.maxPerAddress == 0);
  CHECK(set.connections.handshakeTimeoutMillis == 500);
  CHECK(set.connections.idleTimeoutMillis == 60000);
  CHECK(set.connections.maxBufferedBytes == 1 << 20);
  CHECK(set.connections.slowReaderTimeoutMillis == 2000);
  CHECK(set.connections.maxRequestBytesInFlight == 2 << 20);

  CHECK_THAT(refused({"--data-dir", "d", "--max-connections", "0"}),
             Catch::Contains("--max-connections: 0 is out of range"));
  CHECK_THAT(refused({"--data-dir", "d", "--handshake-timeout-ms", "0"}),
             Catch::Contains("--handshake-timeout-ms: 0 is out of range"));
  CHECK_THAT(refused({"--data-dir", "d", "--max-buffered-bytes", "10"}),
             Catch::Contains("--max-buffered-bytes: 10 is out of range"));
  auto again = parseConfigToml(toTomlConfig(set), "printed");
  CHECK(again.connections.maxConnections == 20000);
  CHECK(again.connections.slowReaderTimeoutMillis == 2000);
}

TEST_CASE("config: an unknown or mistyped flag is a usage error that names it") {
  auto unknown = refused({"--data-dir", "d", "--colour", "blue"});
  CHECK_THAT(unknown, Catch::Contains("--colour"));
  CHECK_THAT(unknown, Catch::Contains("storaged --help"));

  CHECK_THAT(refused({"--data-dir", "d", "--replica", "3"}),
             Catch::Contains("unknown flag: --replica") &&
                 Catch::Contains("did you mean --replicas?"));
  // What follows a mistyped flag may be its value, and a mistyped --secret's value is the
  // secret: it is never echoed.
  auto secret = refused({"--data-dir", "d", "--secrt", "hunter2"});
  CHECK_THAT(secret, Catch::Contains("--secrt") && Catch::Contains("did you mean --secret?"));
  CHECK_THAT(secret, !Catch::Contains("hunter2"));
  CHECK_THAT(refused({"--data-dir", "d", "--secrt=hunter2"}), !Catch::Contains("hunter2"));
  CHECK_THAT(refused({"--data-dir", "d", "--tansfer-rate=1"}),
             Catch::Contains("did you mean --transfer-rate?"));
  CHECK_THAT(refused({"--data-dir", "d", "stray"}), Catch::Contains("stray"));
  CHECK_THAT(refused({"--data-dir", "d", "--listen"}), Catch::Contains("--listen"));
}

TEST_CASE("config: numbers are checked against their range, never wrapped") {
  CHECK_THAT(refused({"--data-dir", "d", "--replicas", "-1"}),
             Catch::Contains("--replicas: -1 is out of range; it must be 1 to 64"));
  CHECK_THAT(refused({"--data-dir", "d", "--replicas=0"}),
             Catch::Contains("--replicas: 0 is out of range"));
  // 2^32 + 1 would wrap to 1 in the 32-bit field; 2^64 to 0 in a 64-bit one.
  CHECK_THAT(refused({"--data-dir", "d", "--weight", "4294967297"}),
             Catch::Contains("--weight: 4294967297 is out of range; it must be 1 to 1000"));
  CHECK_THAT(refused({"--data-dir", "d", "--map-size", "18446744073709551616"}),
             Catch::Contains("--map-size: 18446744073709551616 is out of range"));
  CHECK_THAT(refused({"--data-dir", "d", "--gossip-interval-ms", "-5"}),
             Catch::Contains("--gossip-interval-ms: -5 is out of range"));
  CHECK_THAT(refused({"--data-dir", "d", "--max-value-bytes", "lots"}),
             Catch::Contains("--max-value-bytes: 'lots' is not a whole number"));
  CHECK_THAT(refused({"--data-dir", "d", "--partition-bits", "20"}),
             Catch::Contains("--partition-bits: 20 is out of range; it must be 1 to 16"));
  CHECK_THAT(refused({"--data-dir", "d", "--admission-target-ms", "0"}),
             Catch::Contains("--admission-target-ms: 0 is out of range; it must be 1 to 60000"));
  CHECK_THAT(refused({"--data-dir", "d", "--admission-max-slots", "5000"}),
             Catch::Contains("--admission-max-slots: 5000 is out of range"));
  CHECK(parse({"--data-dir", "d", "--transfer-rate", "0"}).transferBytesPerSecond == 0);
}

TEST_CASE("config: words, a missing --data-dir and an unreadable file are refused by name") {
  CHECK_THAT(refused({"--listen", "x:1"}), Catch::Contains("--data-dir is required"));
  CHECK(parse({"--engine", "memory"}).engine == "memory");
  CHECK_THAT(refused({"--data-dir", "d", "--durability", "fast"}),
             Catch::Contains("--durability: expected sync or buffered, got 'fast'"));
  CHECK_THAT(refused({"--data-dir", "d", "--admission", "maybe"}),
             Catch::Contains("--admission: expected on or off"));
  CHECK(parse({"--engine", "memory"}).logLevel == "info");
  CHECK(parse({"--engine", "memory", "--log-level", "warning"}).logLevel == "warning");
  CHECK_THAT(refused({"--data-dir", "d", "--log-level", "verbose"}),
             Catch::Contains("--log-level: expected info, warning or error, got 'verbose'"));
  CHECK_THAT(refused({"--config", "/nonexistent/dynkv.toml"}),
             Catch::Contains("cannot read config file '/nonexistent/dynkv.toml'"));
}

TEST_CASE("config: a file's unknown key, wrong type or bad value names the file and line") {
  CHECK_THAT(tomlError("replicas = 3\n\ncolour = \"blue\"\n"),
             Catch::Contains("node.toml:3: unknown key 'colour'"));
  CHECK_THAT(tomlError("\nreplica = 3\n"),
             Catch::Contains("node.toml:2: unknown key 'replica'; did you mean 'replicas'?"));
  CHECK_THAT(tomlError("replicas = \"3\"\n"),
             Catch::Contains("node.toml:1: replicas: expected a whole number, got a string"));
  CHECK_THAT(tomlError("zone = \"a\"\nreplicas = -1\n"),
             Catch::Contains("node.toml:2: replicas: -1 is out of range; it must be 1 to 64"));
  CHECK_THAT(tomlError("weight = 4294967297\n"),
             Catch::Contains("node.toml:1: weight: 4294967297 is out of range"));
  CHECK_THAT(tomlError("replicas = 2.5\n"),
             Catch::Contains("expected a whole number, got a floating-point number"));
  CHECK_THAT(tomlError("seeds = \"h:1,h:2\"\n"),
             Catch::Contains("node.toml:1: seeds: expected an array of strings"));
  CHECK_THAT(tomlError("durability = \"fast\"\n"),
             Catch::Contains("node.toml:1: durability: expected sync or buffered, got 'fast'"));
  CHECK_THAT(tomlError("listen = \"a:1\"\nlisten = \"b:1\"\n"), Catch::Contains("node.toml:2"));
  // Not TOML: an unquoted string is a syntax error at its line, not a value cut at the '#'.
  CHECK_THAT(tomlError("zone = \"a\"\nsecret = abc#def\n"), Catch::Contains("node.toml:2"));

  // Through the command line: the same message, naming the file, and exit code 2.
  ConfigFile file("data-dir = \"d\"\ncolour = \"blue\"\n");
  CHECK_THAT(refused({"--config", file.path}),
             Catch::Contains(file.path + ":2: unknown key 'colour'"));
}

TEST_CASE("config: a file's strings are read exactly as written") {
  auto config = parseConfigToml("secret = \"abc#def\"  # a comment after it\n"
                                "zone = 'rack \"a\" = 1'\n"
                                "cluster = \"tab\\there\"\n"
                                "admission = false\n",
                                "node.toml");
  CHECK(config.secret == "abc#def");
  CHECK(config.zone == "rack \"a\" = 1");
  CHECK(config.cluster == "tab\there");
  CHECK_FALSE(config.admission.enabled);
}

TEST_CASE("config: --print-config prints TOML that reads back to the same configuration") {
  auto config = parse({"--data-dir", "/var/lib/dynkv", "--listen", "10.0.0.1:7400",
                       "--seeds", "10.0.0.2:7400,10.0.0.3:7400", "--zone", "rack \"a\" #1",
                       "--durability", "buffered", "--map-size", "1073741824",
                       "--partition-bits", "12", "--replicas", "5", "--transfer-rate", "0",
                       "--admission", "off", "--admission-target-ms", "25",
                       "--max-value-bytes", "1000", "--http", "10.0.0.1:7480"});
  auto printed = answered({"--data-dir", "/var/lib/dynkv", "--listen", "10.0.0.1:7400",
                           "--seeds", "10.0.0.2:7400,10.0.0.3:7400", "--zone", "rack \"a\" #1",
                           "--durability", "buffered", "--map-size", "1073741824",
                           "--partition-bits", "12", "--replicas", "5", "--transfer-rate", "0",
                           "--admission", "off", "--admission-target-ms", "25",
                           "--max-value-bytes", "1000", "--http", "10.0.0.1:7480",
                           "--print-config"});
  CHECK(printed == toTomlConfig(config));

  auto back = parseConfigToml(printed, "printed");
  CHECK(toTomlConfig(back) == printed);
  CHECK(back.dataDir == "/var/lib/dynkv");
  CHECK(back.advertise == "10.0.0.1:7400");
  CHECK(back.seeds == config.seeds);
  CHECK(back.zone == "rack \"a\" #1");
  CHECK(back.durability == Durability::BUFFERED);
  CHECK(back.mapSizeBytes == uint64_t(1) << 30);
  CHECK(back.partitionBits == 12);
  CHECK(back.replicas == 5);
  CHECK(back.transferBytesPerSecond == 0);
  CHECK_FALSE(back.admission.enabled);
  CHECK(back.admission.targetMicros == 25000);
  CHECK(back.limits.maxValueBytes == 1000);
  CHECK(back.http == "10.0.0.1:7480");

  // And storaged takes it back as its --config.
  ConfigFile file(printed);
  CHECK(toTomlConfig(parse({"--config", file.path})) == printed);
}

TEST_CASE("config: the secret is never printed, nor put in an error") {
  auto printed = answered({"--data-dir", "d", "--secret", "hunter2#x", "--print-config"});
  CHECK_THAT(printed, !Catch::Contains("hunter2"));
  CHECK_THAT(printed, Catch::Contains("# secret: set, not shown"));
  CHECK_THAT(answered({"--data-dir", "d", "--print-config"}), Catch::Contains("# secret: none"));
  CHECK_THAT(answered({"--help"}), !Catch::Contains("hunter2"));
  CHECK_THAT(refused({"--secret", "hunter2", "--replicas", "0"}), !Catch::Contains("hunter2"));
  CHECK_THAT(tomlError("secret = 1234\n"), !Catch::Contains("1234"));
}

TEST_CASE("config: --help lists every flag with its meaning and default, --version the build") {
  auto help = answered({"--help"});
  CHECK(answered({"-h"}) == help);
  for (auto flag : {"--data-dir", "--listen", "--advertise", "--http", "--seeds", "--cluster", "--secret",
                    "--engine", "--durability", "--map-size", "--partition-bits",
                    "--max-key-bytes", "--max-value-bytes", "--zone", "--weight", "--replicas",
                    "--transfer-rate", "--gossip-interval-ms", "--anti-entropy-interval-ms",
                    "--admission", "--admission-target-ms", "--admission-max-slots",
                    "--max-connections", "--max-connections-per-address",
                    "--handshake-timeout-ms", "--idle-timeout-ms", "--max-buffered-bytes",
                    "--slow-reader-timeout-ms", "--max-request-bytes-in-flight", "--config",
                    "--print-config", "--version"}) {
    CHECK_THAT(help, Catch::Contains(flag));
  }
  CHECK_THAT(help, Catch::Contains("how many nodes hold each key (1 to 64; default 3)"));
  CHECK_THAT(help, Catch::Contains("(default 127.0.0.1:7400)"));

  CHECK_THAT(answered({"--version"}), Catch::StartsWith("storaged ") && Catch::Contains("git "));
}

TEST_CASE("config: the example config file in docs/ is accepted") {
  auto config = parse({"--config", DYNKV_EXAMPLE_CONFIG});
  CHECK(config.dataDir == "/var/lib/dynkv");
  CHECK(config.seeds.size() == 2);
  CHECK(config.http == "10.0.0.1:7480");
}

TEST_CASE("config: the TLS files go together, from flags or the file") {
  auto config = parse({"--data-dir", "d", "--tls-ca", "ca.pem", "--tls-cert", "n1.pem",
                       "--tls-key", "n1.key"});
  CHECK(config.tlsCa == "ca.pem");
  CHECK(config.tlsCert == "n1.pem");
  CHECK(config.tlsKey == "n1.key");
  CHECK(parse({"--data-dir", "d"}).tlsCa.empty());  // none: plain TCP
  CHECK_THAT(refused({"--data-dir", "d", "--tls-ca", "ca.pem", "--tls-cert", "n1.pem"}),
             Catch::Contains("--tls-ca, --tls-cert and --tls-key go together"));
  auto fromFile = parseConfigToml("tls-ca = \"a\"\ntls-cert = \"b\"\ntls-key = \"c\"\n", "x");
  CHECK(fromFile.tlsKey == "c");
}

TEST_CASE("config: an --http address longer than a gossip record's field is refused") {
  CHECK_THAT(refused({"--data-dir", "d", "--http", std::string(256, 'h') + ":1"}),
             Catch::Contains("--http") && Catch::Contains("the limit is 255"));
}

}  // namespace
}  // namespace dynkv::storaged
