// storaged's log lines: kj's "message; name = value" made one timestamped key=value line.
#include "logging.h"

#include <catch2/catch.hpp>

namespace dynkv::storaged {
namespace {

constexpr int64_t NOON = 1'796'212'800'123'456;  // 2026-12-02T12:00:00.123456Z

TEST_CASE("log line: timestamp, level, message, key=value fields and the source") {
  CHECK(formatLogLine(NOON, kj::LogSeverity::INFO, "/src/storaged/transfer.c++", 150,
                      "partition transfer complete; partition = 17; pending_.size() = 3") ==
        "2026-12-02T12:00:00.123Z INFO  partition transfer complete partition=17 "
        "pending_size=3 src=transfer.c++:150\n");
  CHECK(formatLogLine(NOON, kj::LogSeverity::WARNING, "gossip.c++", 9,
                      "admin join; address.c_str() = 10.1.1.1:7400; now->version() = 4") ==
        "2026-12-02T12:00:00.123Z WARN  admin join address=10.1.1.1:7400 now_version=4 "
        "src=gossip.c++:9\n");
}

TEST_CASE("log line: a value with spaces, quotes or newlines stays one quoted field") {
  auto line = formatLogLine(NOON, kj::LogSeverity::ERROR, "a.c++", 1,
                            "gossip stopped; e = a.c++:3: failed: peer said \"no\"; really\n"
                            "stack: 0x1 0x2");
  CHECK(line ==
        "2026-12-02T12:00:00.123Z ERROR gossip stopped e=\"a.c++:3: failed: peer said "
        "\\\"no\\\"; really\\nstack: 0x1 0x2\" src=a.c++:1\n");
  CHECK(std::count(line.begin(), line.end(), '\n') == 1);
}

TEST_CASE("log line: a message without fields, and literal arguments, are kept as text") {
  CHECK(formatLogLine(NOON, kj::LogSeverity::INFO, "x.c++", 2, "left the cluster") ==
        "2026-12-02T12:00:00.123Z INFO  left the cluster src=x.c++:2\n");
  CHECK(formatLogLine(NOON, kj::LogSeverity::INFO, "x.c++", 2, "refused; coordinatePut; n = 2") ==
        "2026-12-02T12:00:00.123Z INFO  refused; coordinatePut n=2 src=x.c++:2\n");
}

TEST_CASE("log level: info, warning and error; anything else is refused") {
  CHECK(parseLogLevel("info") == kj::LogSeverity::INFO);
  CHECK(parseLogLevel("warning") == kj::LogSeverity::WARNING);
  CHECK(parseLogLevel("error") == kj::LogSeverity::ERROR);
  CHECK_FALSE(parseLogLevel("verbose"));
  CHECK_FALSE(parseLogLevel("INFO"));
}

}  // namespace
}  // namespace dynkv::storaged
