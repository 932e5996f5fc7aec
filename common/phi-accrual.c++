#include "phi-accrual.h"

#include <algorithm>
#include <cmath>

namespace dynkv {

void PhiAccrual::heartbeat(int64_t nowMillis) {
  if (last_ >= 0) addInterval(double(std::max<int64_t>(nowMillis - last_, 0)));
  last_ = std::max(last_, nowMillis);
}

void PhiAccrual::addInterval(double interval) {
  if (options_.window == 0) return;
  sum_ += interval;
  sumSquares_ += interval * interval;
  if (intervals_.size() < options_.window) {
    if (intervals_.empty()) intervals_.reserve(options_.window);
    intervals_.push_back(interval);
    return;
  }
  double old = intervals_[next_];
  intervals_[next_] = interval;
  next_ = (next_ + 1) % intervals_.size();
  sum_ -= old;
  sumSquares_ -= old * old;
}

double PhiAccrual::meanMillis() const {
  return intervals_.empty() ? options_.firstIntervalMillis : sum_ / double(intervals_.size());
}

double PhiAccrual::phi(int64_t nowMillis) const {
  if (last_ < 0) return 0;
  return phiAfter(double(std::max<int64_t>(nowMillis - last_, 0)));
}

double PhiAccrual::phiAfter(double elapsed) const {
  double mean = meanMillis() + options_.acceptablePauseMillis;
  double variance = intervals_.empty() ? 0 : sumSquares_ / double(intervals_.size()) -
                                                 (sum_ / double(intervals_.size())) *
                                                     (sum_ / double(intervals_.size()));
  double stdDev = std::max(std::sqrt(std::max(variance, 0.0)), options_.minStdDevMillis);
  // P(interval > elapsed) for a normal distribution, via the logistic approximation of its
  // CDF that Akka's detector uses (accurate to ~1e-3); a very long silence saturates at +inf,
  // which reads as what it is: suspected.
  double y = (elapsed - mean) / stdDev;
  double e = std::exp(-y * (1.5976 + 0.070566 * y * y));
  if (elapsed > mean) return -std::log10(e / (1.0 + e));
  return -std::log10(1.0 - 1.0 / (1.0 + e));
}

}  // namespace dynkv
