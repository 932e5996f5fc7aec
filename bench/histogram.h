// A log-linear latency histogram in the manner of HdrHistogram: values below 128 are counted
// exactly, larger ones in 64 buckets per power of two, so any percentile is read to within
// 1/128 (under 0.8%) of its true value. Memory is fixed (a few thousand counters for values
// up to ~10^13) whatever the number of samples: no sample is ever kept.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace dynkv::bench {

class Histogram {
 public:
  Histogram() : counts_(bucketCount(), 0) {}

  void record(uint64_t value) {
    counts_[indexOf(std::min(value, MAX_VALUE))]++;
    count_++;
    sum_ += double(value);
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }

  void merge(const Histogram& other) {
    for (size_t i = 0; i < counts_.size(); i++) counts_[i] += other.counts_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  double mean() const { return count_ == 0 ? 0 : sum_ / double(count_); }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }

  double percentile(double p) const {
    // The value below which p percent of the samples fall: the midpoint of the bucket that
    // holds the ceil(p% * count)-th sample, clamped to the recorded min and max. 0 if empty.
    if (count_ == 0) return 0;
    uint64_t rank = uint64_t(std::ceil(p / 100.0 * double(count_)));
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); i++) {
      seen += counts_[i];
      if (seen >= rank) {
        double mid = (double(lowerBound(i)) + double(upperBound(i))) / 2;
        return std::clamp(mid, double(min()), double(max_));
      }
    }
    return double(max_);
  }

  template <typename Func>
  void forEachBucket(Func&& func) const {
    // func(upper bound of the bucket, samples at or below it) for every non-empty bucket, in
    // increasing order: the points of the cumulative distribution.
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); i++) {
      if (counts_[i] == 0) continue;
      seen += counts_[i];
      func(std::min(upperBound(i), max_), seen);
    }
  }

 private:
  static constexpr unsigned SUB_BITS = 7;  // 128 exact values, then 64 per octave
  static constexpr uint64_t SUB_COUNT = 1u << SUB_BITS;
  static constexpr uint64_t HALF = SUB_COUNT / 2;
  static constexpr uint64_t MAX_VALUE = (uint64_t(1) << 44) - 1;  // ~4.9 hours in ns

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;

  static size_t bucketCount() { return indexOf(MAX_VALUE) + 1; }

  static size_t indexOf(uint64_t v) {
    if (v < SUB_COUNT) return size_t(v);
    unsigned msb = 63 - unsigned(__builtin_clzll(v));
    unsigned shift = msb - (SUB_BITS - 1);  // >= 1
    uint64_t sub = v >> shift;              // in [HALF, SUB_COUNT)
    return size_t(SUB_COUNT + (shift - 1) * HALF + (sub - HALF));
  }

  static uint64_t lowerBound(size_t index) {
    if (index < SUB_COUNT) return index;
    size_t shift = (index - SUB_COUNT) / HALF + 1;
    uint64_t sub = (index - SUB_COUNT) % HALF + HALF;
    return sub << shift;
  }

  static uint64_t upperBound(size_t index) {
    if (index < SUB_COUNT) return index;
    size_t shift = (index - SUB_COUNT) / HALF + 1;
    return lowerBound(index) + (uint64_t(1) << shift) - 1;
  }
};

}  // namespace dynkv::bench
