#include "request-age.h"

#include <kj/time.h>

#include <algorithm>

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

int64_t monotonicMicros() {
  return (kj::systemPreciseMonotonicClock().now() - kj::origin<kj::TimePoint>()) /
         kj::MICROSECONDS;
}

bool staleRequest(int64_t ageMicros, uint64_t patienceMicros) {
  return patienceMicros != 0 && ageMicros >= 0 && uint64_t(ageMicros) >= patienceMicros / 2;
}

}  // namespace dynkv
