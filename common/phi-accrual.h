// The phi accrual failure detector (Hayashibara et al., 2004), as the paper's §4.8 and
// Cassandra use it: instead of a yes/no verdict it gives a suspicion level that grows with
// the time since the last heartbeat, scaled by how regular heartbeats have been. Pure: the
// caller passes every time in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dynkv {

class PhiAccrual {
 public:
  struct Options {
    size_t window = 100;               // inter-arrival samples kept
    double minStdDevMillis = 100;      // floor, so a very regular peer is not convicted early
    double acceptablePauseMillis = 0;  // added to the mean: pauses this long are normal
    double firstIntervalMillis = 1000; // assumed before two heartbeats have been seen
  };

  PhiAccrual() : PhiAccrual(Options{}) {}
  explicit PhiAccrual(Options options) : options_(options) {}

  void heartbeat(int64_t nowMillis);
  // A sign of life arrived now.

  double phi(int64_t nowMillis) const;
  // -log10 of the probability that a heartbeat is still to come after this long, assuming
  // normally distributed intervals. 0 before the first heartbeat. Conventionally a peer is
  // suspected above 8.

  void addInterval(double millis);
  double phiAfter(double elapsedMillis) const;
  // The same detector over samples the caller measures itself: a client feeds it reply
  // latencies and asks how unlikely it is that a request outstanding this long is still
  // coming (accrual over request history rather than heartbeats).

  bool started() const { return last_ >= 0; }
  double meanMillis() const;

 private:
  Options options_;
  std::vector<double> intervals_;  // a ring of the last `window` samples, allocated on the first
  size_t next_ = 0;                // where the next sample goes once the ring is full
  double sum_ = 0;
  double sumSquares_ = 0;
  int64_t last_ = -1;
};

constexpr double PHI_SUSPECT_THRESHOLD = 8.0;

}  // namespace dynkv
