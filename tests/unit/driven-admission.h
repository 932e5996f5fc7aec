// A BackgroundAdmission (storaged/admission.h) on driven time, for tests: its lag probes and
// windows run on a kj::TimerImpl that the test advances, and foreground operations are timed on
// that same time, so nothing sleeps and nothing depends on how fast the machine is.
#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include "admission.h"

namespace dynkv::storaged {

class TimerClock final : public kj::MonotonicClock {
  // The time a driven timer is at.
 public:
  explicit TimerClock(const kj::Timer& timer) : timer_(timer) {}
  kj::TimePoint now() const override { return timer_.now(); }

 private:
  const kj::Timer& timer_;
};

struct DrivenAdmission {
  DrivenAdmission(kj::WaitScope& waitScope, AdmissionOptions options,
                  size_t maxWaiters = BackgroundAdmission::MAX_WAITERS)
      : waitScope(waitScope), admission(timer, options, maxWaiters, clock) {}

  kj::WaitScope& waitScope;
  kj::TimerImpl timer{kj::origin<kj::TimePoint>()};
  TimerClock clock{timer};
  BackgroundAdmission admission;
  kj::Promise<void> loop = admission.run().eagerlyEvaluate(nullptr);

  void probes(size_t n) {
    // n lag probes, each fired on time (a loop with nothing else to do), and what they run.
    for (size_t i = 0; i < n; i++) {
      timer.advanceTo(timer.now() + BackgroundAdmission::PROBE_INTERVAL);
      waitScope.poll();
    }
  }

  void windows(size_t n) { probes(n * BackgroundAdmission::PROBES_PER_WINDOW); }

  void stall(kj::Duration d) {
    // The loop gets round to its timers only `d` later: the probe due meanwhile fires late.
    timer.advanceTo(timer.now() + d);
    waitScope.poll();
  }
};

}  // namespace dynkv::storaged
