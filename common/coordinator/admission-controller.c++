#include "admission-controller.h"

#include <kj/debug.h>

#include <algorithm>

namespace dynkv {

namespace {

// Log-linear buckets, as HdrHistogram's: values below 2^(SUB_BITS+1) each have a bucket, then
// every power of two is split into 2^SUB_BITS equal buckets, so a bucket is at most 1/8 of its
// values wide.
constexpr int SUB_BITS = 3;
constexpr int64_t SUB_BUCKETS = int64_t(1) << SUB_BITS;  // per power of two
constexpr int64_t EXACT = SUB_BUCKETS * 2;               // values with a bucket each
constexpr int TOP_EXPONENT = 36;                         // 2^36 us and more: the last bucket

static_assert(LatencyHistogram::BUCKETS ==
              size_t(EXACT + (TOP_EXPONENT - (SUB_BITS + 1)) * SUB_BUCKETS));

size_t bucketOf(int64_t micros) {
  if (micros < EXACT) return size_t(std::max<int64_t>(micros, 0));
  int exponent = 63 - __builtin_clzll(uint64_t(micros));
  if (exponent >= TOP_EXPONENT) return LatencyHistogram::BUCKETS - 1;
  int64_t sub = (micros >> (exponent - SUB_BITS)) & (SUB_BUCKETS - 1);
  return size_t(EXACT + (exponent - (SUB_BITS + 1)) * SUB_BUCKETS + sub);
}

int64_t upperBoundOf(size_t bucket) {
  // The largest value bucketOf() puts in `bucket`.
  if (int64_t(bucket) < EXACT) return int64_t(bucket);
  int64_t above = int64_t(bucket) - EXACT;
  int exponent = int(above / SUB_BUCKETS) + SUB_BITS + 1;
  int64_t width = int64_t(1) << (exponent - SUB_BITS);
  return (SUB_BUCKETS + above % SUB_BUCKETS) * width + width - 1;
}

}  // namespace

void LatencyHistogram::add(int64_t micros) {
  counts_[bucketOf(micros)]++;
  count_++;
  max_ = std::max(max_, micros);
}

int64_t LatencyHistogram::p99() const {
  if (count_ == 0) return 0;
  // The rank of the 99th percentile, ceil(0.99 * count), in integers.
  uint64_t rank = count_ - count_ / 100;
  uint64_t seen = 0;
  for (size_t bucket = 0; bucket < BUCKETS; bucket++) {
    seen += counts_[bucket];
    if (seen >= rank) return std::min(upperBoundOf(bucket), max_);
  }
  KJ_UNREACHABLE;
}

void LatencyHistogram::clear() {
  counts_.fill(0);
  count_ = 0;
  max_ = 0;
}

AdmissionController::AdmissionController(AdmissionOptions options) : options_(options) {
  KJ_REQUIRE(options_.minSlots >= 1, "admission control needs at least one background slot",
             options_.minSlots);
  KJ_REQUIRE(options_.maxSlots >= options_.minSlots,
             "admission control's maximum slots must be at least its minimum", options_.maxSlots,
             options_.minSlots);
  KJ_REQUIRE(options_.targetMicros > 0, "admission control's target latency must be positive",
             options_.targetMicros);
  slots_ = options_.enabled ? options_.minSlots : options_.maxSlots;
}

void AdmissionController::observeOperation(int64_t micros) { operations_.add(micros); }

void AdmissionController::observeLoopLag(int64_t micros) { loopLag_.add(micros); }

uint32_t AdmissionController::tick() {
  lastOperationP99_ = operations_.p99();
  lastLoopLagP99_ = loopLag_.p99();
  lastOperationSamples_ = operations_.count();
  operations_.clear();
  loopLag_.clear();
  if (!options_.enabled) return slots_;
  // An empty window has p99 0: an idle node grows its slots like a calm one.
  if (lastP99Micros() > options_.targetMicros) {
    slots_ = std::max(options_.minSlots, slots_ / 2);
  } else if (slots_ < options_.maxSlots) {
    slots_++;
  }
  return slots_;
}

int64_t AdmissionController::lastP99Micros() const {
  return std::max(lastOperationP99_, lastLoopLagP99_);
}

}  // namespace dynkv
