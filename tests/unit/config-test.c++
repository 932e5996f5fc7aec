// storaged's settings: flags, a config file, and what a bad setting is told.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "config.h"

namespace dynkv::storaged {
namespace {

Config parse(std::vector<std::string> args) {
  args.insert(args.begin(), "storaged");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return parseConfig(int(argv.size()), argv.data());
}

TEST_CASE("config: flags, and a config file whose settings the flags override") {
  char path[] = "/tmp/dynkv-config-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << "# a node\n"
                         "data-dir = /var/lib/dynkv\n"
                         "listen = 10.0.0.1:7400\n"
                         "seeds = 10.0.0.2:7400, 10.0.0.3:7400\n"
                         "durability = buffered\n"
                         "zone = rack-a\n";
  auto config = parse({"--config", path, "--listen", "127.0.0.1:9000", "--weight=2"});
  unlink(path);
  CHECK(config.dataDir == "/var/lib/dynkv");
  CHECK(config.listen == "127.0.0.1:9000");
  CHECK(config.advertise == "127.0.0.1:9000");
  CHECK(config.seeds == std::vector<std::string>{"10.0.0.2:7400", "10.0.0.3:7400"});
  CHECK(config.durability == Durability::BUFFERED);
  CHECK(config.zone == "rack-a");
  CHECK(config.weight == 2);
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

TEST_CASE("config: a bad setting is refused with its name") {
  CHECK_THROWS_WITH(parse({"--listen", "x:1"}), Catch::Contains("--data-dir is required"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--durability", "fast"}),
                    Catch::Contains("durability"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--partition-bits", "20"}),
                    Catch::Contains("partition-bits"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--max-value-bytes", "lots"}),
                    Catch::Contains("not a number"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--colour", "blue"}),
                    Catch::Contains("unknown setting 'colour'"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--admission", "maybe"}),
                    Catch::Contains("admission: expected on or off"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--admission-target-ms", "0"}),
                    Catch::Contains("admission-target-ms: must be 1..60000"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--admission-max-slots", "0"}),
                    Catch::Contains("admission-max-slots: must be 1..1024"));
  CHECK_THROWS_WITH(parse({"--data-dir", "d", "--admission-max-slots", "5000"}),
                    Catch::Contains("admission-max-slots"));
  CHECK_THROWS_WITH(parse({"--config", "/nonexistent/dynkv.conf"}),
                    Catch::Contains("cannot read config file"));
}

}  // namespace
}  // namespace dynkv::storaged
