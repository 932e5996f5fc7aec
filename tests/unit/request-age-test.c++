// A request's age on arrival, with explicit times (microseconds).
#include "request-age.h"

#include <catch2/catch.hpp>

using dynkv::RequestAge;
using dynkv::staleRequest;

TEST_CASE("request age: a connection's first request and any as fast are fresh") {
  RequestAge age;
  // The two clocks are 7 s apart; only the difference between requests counts.
  CHECK(age.observe(1'000'000, 8'000'300) == 0);
  CHECK(age.observe(2'000'000, 9'000'250) == 0);  // faster: the new floor
  CHECK(age.observe(3'000'000, 10'000'250) == 0);
}

TEST_CASE("request age: a request read late is as old as its wait beyond the fastest") {
  RequestAge age;
  age.observe(0, 5'000'100);
  // Sent at 1 s, read 30 s after the first (the node was paused): 29 s older than the fastest,
  // less the floor's allowance for drift (1 ms per second elapsed).
  int64_t old = age.observe(1'000'000, 35'000'100);
  CHECK(old == 29'000'000 - 30'000);
  CHECK(staleRequest(old, 1'000'000));
  // The stale request does not move the floor: the next fresh one is fresh.
  CHECK(age.observe(31'000'000, 36'000'100) == 0);
}

TEST_CASE("request age: clocks drifting apart never make fresh requests look old") {
  RequestAge age;
  // The receiver's clock runs 100 ppm faster than the sender's, for a day of requests every
  // second: (received - sent) grows by 100 us a second, well within the floor's allowance.
  int64_t sent = 0, received = 42;
  for (int i = 0; i < 86'400; i++) {
    REQUIRE(age.observe(sent, received) == 0);
    sent += 1'000'000;
    received += 1'000'100;
  }
}

TEST_CASE("request age: stale means half the sender's patience used up on the way") {
  CHECK_FALSE(staleRequest(0, 1'000'000));
  CHECK_FALSE(staleRequest(499'999, 1'000'000));
  CHECK(staleRequest(500'000, 1'000'000));
  CHECK_FALSE(staleRequest(60'000'000, 0));  // a sender that did not say is never refused
}

TEST_CASE("request age: an answer ready after the sender's patience is abandoned") {
  RequestAge age;
  age.observe(0, 5'000'100);
  // Read fresh (100 us after the floor), then the node was paused for 3 s before answering.
  CHECK(age.observe(1'000'000, 6'000'100) == 0);
  CHECK(age.ageAt(1'000'000, 6'000'100) == 0);
  int64_t waited = age.ageAt(1'000'000, 9'000'100);
  CHECK(waited == 3'000'000 - 3'000);  // less the floor's drift allowance, never more
  CHECK(dynkv::abandonedRequest(waited, 2'000'000));
  CHECK_FALSE(dynkv::abandonedRequest(waited, 5'000'000));
  CHECK_FALSE(dynkv::abandonedRequest(waited, 0));
  CHECK(RequestAge().ageAt(1'000'000, 60'000'000) == 0);  // nothing observed: no estimate
}
