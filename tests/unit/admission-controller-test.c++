// The admission controller's feedback loop (common/coordinator/admission-controller.h), fed
// latencies directly and ticked by hand: no clock, no event loop.
#include "admission-controller.h"

#include <kj/exception.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "allocation-count.h"

namespace dynkv {
namespace {

constexpr int64_t MS = 1000;  // in microseconds

AdmissionOptions options(uint32_t minSlots, uint32_t maxSlots, int64_t targetMicros = 10 * MS) {
  AdmissionOptions o;
  o.minSlots = minSlots;
  o.maxSlots = maxSlots;
  o.targetMicros = targetMicros;
  return o;
}

void window(AdmissionController& controller, int64_t operationMicros, size_t count = 200) {
  // A window of `count` operations that took `operationMicros` each, then its tick.
  for (size_t i = 0; i < count; i++) controller.observeOperation(operationMicros);
  controller.tick();
}

std::vector<uint32_t> slotsOver(AdmissionController& controller, int64_t operationMicros,
                                size_t windows) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < windows; i++) {
    window(controller, operationMicros);
    out.push_back(controller.slots());
  }
  return out;
}

TEST_CASE("admission: calm windows add one slot each, from the minimum up to the maximum") {
  AdmissionController controller(options(2, 6));
  CHECK(controller.slots() == 2);  // a node that just started earns its slots
  CHECK(slotsOver(controller, 1 * MS, 6) == std::vector<uint32_t>{3, 4, 5, 6, 6, 6});
  CHECK(controller.lastP99Micros() == 1 * MS);
}

TEST_CASE("admission: foreground latency above the target halves the slots, down to the minimum") {
  AdmissionController controller(options(1, 16));
  slotsOver(controller, 1 * MS, 20);
  REQUIRE(controller.slots() == 16);

  CHECK(slotsOver(controller, 20 * MS, 6) == std::vector<uint32_t>{8, 4, 2, 1, 1, 1});
  CHECK(controller.lastP99Micros() == 20 * MS);

  // Once the foreground is calm again the slots come back, one a window.
  CHECK(slotsOver(controller, 2 * MS, 4) == std::vector<uint32_t>{2, 3, 4, 5});
}

TEST_CASE("admission: a p99 at the target is not above it, and a window without samples is calm") {
  AdmissionController controller(options(1, 4));
  CHECK(slotsOver(controller, 10 * MS, 3) == std::vector<uint32_t>{2, 3, 4});
  controller.tick();
  CHECK(controller.slots() == 4);
  CHECK(controller.lastP99Micros() == 0);

  AdmissionController idle(options(1, 4));
  for (int i = 0; i < 5; i++) idle.tick();
  CHECK(idle.slots() == 4);
}

TEST_CASE("admission: the p99 disregards the slowest 1% of a window, and no more") {
  // 1000 operations: the 99th percentile is the 990th fastest.
  AdmissionController calm(options(1, 8));
  slotsOver(calm, 1 * MS, 7);
  REQUIRE(calm.slots() == 8);
  for (int i = 0; i < 990; i++) calm.observeOperation(1 * MS);
  for (int i = 0; i < 10; i++) calm.observeOperation(900 * MS);
  calm.tick();
  CHECK(calm.slots() == 8);
  CHECK(calm.lastP99Micros() <= 1 * MS + MS / 8);

  AdmissionController slow(options(1, 8));
  slotsOver(slow, 1 * MS, 7);
  for (int i = 0; i < 989; i++) slow.observeOperation(1 * MS);
  for (int i = 0; i < 11; i++) slow.observeOperation(900 * MS);
  slow.tick();
  CHECK(slow.slots() == 4);
  CHECK(slow.lastP99Micros() == 900 * MS);
}

TEST_CASE("admission: a lagging event loop shrinks the slots however fast the operations are") {
  // Thousands of fast operations do not drown the loop's few lag probes: the signals are kept
  // apart and the worse one decides.
  AdmissionController controller(options(1, 8));
  slotsOver(controller, 100, 7);
  REQUIRE(controller.slots() == 8);
  for (int i = 0; i < 10000; i++) controller.observeOperation(100);
  for (int i = 0; i < 4; i++) controller.observeLoopLag(40 * MS);
  controller.tick();
  CHECK(controller.slots() == 4);
  CHECK(controller.lastOperationP99Micros() == 100);
  CHECK(controller.lastLoopLagP99Micros() == 40 * MS);
  CHECK(controller.lastP99Micros() == 40 * MS);
  CHECK(controller.lastOperationSamples() == 10000);
}

TEST_CASE("admission: slots stay within [minSlots, maxSlots] whatever the latencies") {
  std::mt19937_64 random(7);
  AdmissionController controller(options(3, 12));
  for (int w = 0; w < 2000; w++) {
    int64_t latency = random() % 2 ? int64_t(random() % (5 * MS)) : int64_t(random() % (50 * MS));
    window(controller, latency, random() % 50);
    REQUIRE(controller.slots() >= 3);
    REQUIRE(controller.slots() <= 12);
  }
}

TEST_CASE("admission: disabled, the slots are the maximum whatever the latency, and it still "
          "measures") {
  auto o = options(1, 8);
  o.enabled = false;
  AdmissionController controller(o);
  CHECK_FALSE(controller.enabled());
  CHECK(controller.slots() == 8);
  CHECK(slotsOver(controller, 500 * MS, 3) == std::vector<uint32_t>{8, 8, 8});
  CHECK(controller.lastP99Micros() == 500 * MS);
}

TEST_CASE("admission: a million samples in a window cost no memory and give the p99 within "
          "12.5%") {
  AdmissionController controller(options(1, 8, 980 * MS));
  slotsOver(controller, 1 * MS, 7);
  REQUIRE(controller.slots() == 8);
  size_t before = allocationCount();
  // 1 us to 1 s, each once, in a scrambled order: the exact p99 is 990,000 us.
  for (int64_t i = 0; i < 1000000; i++) controller.observeOperation((i * 7919) % 1000000 + 1);
  controller.tick();
  size_t allocated = allocationCount() - before;

  CHECK(allocated == 0);
  CHECK(sizeof(AdmissionController) < 8 * 1024);
  CHECK(controller.lastP99Micros() >= 990000);
  CHECK(controller.lastP99Micros() <= 990000 + 990000 / 8);
  CHECK(controller.slots() == 4);  // above the 980 ms target
}

TEST_CASE("admission: the histogram's p99 is never below the exact one nor 12.5% above it") {
  std::mt19937_64 random(GENERATE(1, 2, 3, 4, 5));
  LatencyHistogram histogram;
  std::vector<int64_t> samples(1 + random() % 5000);
  int64_t scale = int64_t(1) << (random() % 34);  // up to about 4.7 hours
  for (auto& s : samples) {
    s = int64_t(random() % uint64_t(scale)) + 1;
    histogram.add(s);
  }
  std::sort(samples.begin(), samples.end());
  int64_t exact = samples[size_t((samples.size() * 99 + 99) / 100) - 1];  // ceil(0.99 n)-th

  CHECK(histogram.count() == samples.size());
  CHECK(histogram.p99() >= exact);
  CHECK(histogram.p99() <= exact + exact / 8);
  CHECK(histogram.p99() <= samples.back());

  histogram.clear();
  CHECK(histogram.count() == 0);
  CHECK(histogram.p99() == 0);
}

TEST_CASE("admission: small latencies are exact, negative ones count as zero, huge ones are "
          "kept") {
  LatencyHistogram histogram;
  for (int64_t v : {3, 7, 15}) {
    histogram.clear();
    histogram.add(v);
    CHECK(histogram.p99() == v);
  }
  histogram.clear();
  histogram.add(-5);
  CHECK(histogram.p99() == 0);
  histogram.clear();
  histogram.add(int64_t(1) << 50);
  CHECK(histogram.p99() >= int64_t(1) << 35);
}

TEST_CASE("admission: options that make no sense are refused") {
  CHECK_THROWS_AS(AdmissionController(options(0, 8)), kj::Exception);
  CHECK_THROWS_AS(AdmissionController(options(4, 2)), kj::Exception);
  CHECK_THROWS_AS(AdmissionController(options(1, 8, 0)), kj::Exception);
}

}  // namespace
}  // namespace dynkv
