#include "request-age.h"

#include <kj/time.h>

#include <algorithm>
#include <random>

namespace dynkv {

int64_t RequestAge::observe(int64_t sentMicros, int64_t receivedMicros) {
  int64_t sample = receivedMicros - sentMicros;
  if (!floor_) {
    floor_ = sample;
    floorAt_ = receivedMicros;
    return 0;
  }
  int64_t elapsed = std::max<int64_t>(0, receivedMicros - floorAt_);
  int64_t floor = *floor_ + int64_t(double(elapsed) * DRIFT);
  if (sample <= floor) {
    floor_ = sample;
    floorAt_ = receivedMicros;
    return 0;
  }
  return sample - floor;
}

int64_t RequestAge::ageAt(int64_t sentMicros, int64_t nowMicros) const {
  if (!floor_) return 0;
  int64_t elapsed = std::max<int64_t>(0, nowMicros - floorAt_);
  int64_t floor = *floor_ + int64_t(double(elapsed) * DRIFT);
  return std::max<int64_t>(0, nowMicros - sentMicros - floor);
}

int64_t monotonicMicros() {
  return (kj::systemPreciseMonotonicClock().now() - kj::origin<kj::TimePoint>()) /
         kj::MICROSECONDS;
}

bool staleRequest(int64_t ageMicros, uint64_t patienceMicros) {
  return patienceMicros != 0 && ageMicros >= 0 && uint64_t(ageMicros) >= patienceMicros / 2;
}

uint64_t monotonicClockId() {
  static const uint64_t id = []() {
    std::random_device entropy;
    uint64_t drawn = 0;
    while (drawn == 0) drawn = (uint64_t(entropy()) << 32) | entropy();
    return drawn;
  }();
  return id;
}

bool abandonedRequest(int64_t ageMicros, uint64_t patienceMicros) {
  return patienceMicros != 0 && ageMicros >= 0 && uint64_t(ageMicros) >= patienceMicros;
}

}  // namespace dynkv
