// The process's one failure detector, with explicit times (microseconds).
#include "failure-detector.h"

#include <catch2/catch.hpp>

namespace dynkv {
namespace {

TEST_CASE(
    "failure detector: no evidence, no suspicion; an SDK without heartbeats is judged by "
    "its calls") {
  FailureDetector fd;
  CHECK_FALSE(fd.suspect("a", 0));
  CHECK_FALSE(fd.heard("a"));
  CHECK(fd.phi("a", 0) == 0);

  fd.callFailed("a", 1'000'000);  // 100 ms, then 200 ms, ...
  CHECK(fd.suspect("a", 1'050'000));
  CHECK_FALSE(fd.suspect("a", 1'100'000));
  fd.callFailed("a", 2'000'000);
  CHECK(fd.suspect("a", 2'150'000));
  CHECK_FALSE(fd.suspect("a", 2'200'000));
  fd.callFailed("a", 3'000'000);
  fd.callSucceeded("a");  // an answer clears the backoff at once
  CHECK_FALSE(fd.suspect("a", 3'000'001));
  for (int i = 0; i < 20; i++) fd.callFailed("a", 4'000'000);
  CHECK(fd.suspect("a", 8'999'999));  // capped at 5 s
  CHECK_FALSE(fd.suspect("a", 9'000'000));
  CHECK_FALSE(fd.heard("a"));
}

TEST_CASE("failure detector: a call outstanding far past the node's usual latency suspects it") {
  FailureDetector fd;
  for (int i = 0; i < 20; i++) {
    auto id = fd.callStarted("b", i * 10'000);
    fd.callEnded(id, i * 10'000 + 1'000, true);  // 1 ms replies
  }
  auto id = fd.callStarted("b", 1'000'000);
  CHECK_FALSE(fd.suspect("b", 1'100'000));
  CHECK(fd.suspect("b", 2'000'000));
  CHECK(fd.phi("b", 2'000'000) > PHI_SUSPECT_THRESHOLD);
  fd.callEnded(id, 2'000'000, false);
  fd.callEnded(id, 2'000'000, true);  // ended twice: ignored
  CHECK_FALSE(fd.suspect("b", 2'000'001));
}

TEST_CASE("failure detector: heartbeats that stop make the node suspected until they resume") {
  FailureDetector fd;
  for (int64_t t = 0; t <= 10'000'000; t += 1'000'000) fd.heartbeat("c", t);
  CHECK(fd.heard("c"));
  CHECK_FALSE(fd.suspect("c", 11'500'000));
  CHECK(fd.suspect("c", 16'000'000));
  CHECK(fd.heartbeatPhi("c", 16'000'000) > PHI_SUSPECT_THRESHOLD);
  fd.heartbeat("c", 16'000'000);
  CHECK_FALSE(fd.suspect("c", 16'100'000));
  CHECK_FALSE(fd.suspect("d", 16'100'000));  // another address has its own history
}

}  // namespace
}  // namespace dynkv
