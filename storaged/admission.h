// Admission control for background work (DESIGN.md, "Anti-entropy"; the paper's section 6.5),
// the shell around common/coordinator/admission-controller.h: it measures the foreground, ends
// the controller's windows on a timer, and hands the slots the controller grants to background
// operations (hint delivery, partition transfer, anti-entropy, tombstone collection), one slot
// per operation in flight.
//
// A background job takes one slot per step and holds it for as long as the step uses this
// node's storage or network:
//
//   return admission.acquire().then([this](BackgroundAdmission::Slot slot) {
//     return oneStep().attach(kj::mv(slot));  // returned when the step's promise is done
//   });
//
// A job whose step cannot get a slot at all (acquire() fails OVERLOADED: too many wait
// already) should end its round and try again later, not retry at once.
//
// Caveats:
// - Never ask for a slot while holding one: with one slot left the step waits for itself.
// - A slot held across a network call is held for as long as the peer takes (up to the call's
//   timeout); time out such calls, and do not hold a slot across a pause between steps.
// - timed() records a promise's time when its result is taken, as kj promises are lazy: at once
//   for an answer the RPC layer awaits, late for one nobody awaits yet.
#pragma once

#include <kj/async.h>
#include <kj/time.h>
#include <kj/timer.h>

#include <cstddef>
#include <cstdint>
#include <deque>

#include "admission-controller.h"

namespace dynkv::storaged {

struct AdmissionStats {
  // For status reporting (Admin.nodeStats: admissionSlots, admissionEnabled, foregroundP99Micros).
  uint32_t slots = 0;   // how many background operations may run at once now
  uint32_t inUse = 0;   // how many hold a slot now (more than `slots` just after a decrease)
  size_t waiting = 0;   // acquire() calls queued (counting callers that gave up meanwhile)
  bool enabled = true;
  int64_t foregroundP99Micros = 0;  // what the last window measured: the worse of the two below
  int64_t operationP99Micros = 0;   // p99 of local storage operations
  int64_t loopLagP99Micros = 0;     // p99 of the event loop's lag
  uint64_t operationSamples = 0;    // foreground operations the last window saw
};

class BackgroundAdmission {
 public:
  class Slot {
    // Permission for one background operation. Move-only; the slot goes back when the Slot
    // holding it is destroyed. A default-constructed or moved-from Slot holds nothing.
   public:
    Slot() = default;
    Slot(Slot&& other) noexcept : owner_(other.owner_) { other.owner_ = nullptr; }
    Slot& operator=(Slot&& other) noexcept;
    ~Slot() noexcept;

    bool held() const { return owner_ != nullptr; }

   private:
    friend class BackgroundAdmission;
    explicit Slot(BackgroundAdmission& owner) : owner_(&owner) {}
    BackgroundAdmission* owner_ = nullptr;
  };

  static constexpr auto PROBE_INTERVAL = 50 * kj::MILLISECONDS;
  static constexpr uint32_t PROBES_PER_WINDOW = 4;  // the controller's window: 200 ms
  static constexpr size_t MAX_WAITERS = 1024;

  BackgroundAdmission(kj::Timer& timer, AdmissionOptions options,
                      size_t maxWaiters = MAX_WAITERS,
                      const kj::MonotonicClock& clock = kj::systemPreciseMonotonicClock());
  // Windows end and the loop's lag is probed on `timer`; foreground operations are timed with
  // `clock`. Throws if `options` make no sense (AdmissionController). The timer and the clock
  // must outlive it; it must outlive every Slot it grants.

  kj::Promise<void> run();
  // Forever: every PROBE_INTERVAL records how late the timer fired as a sample of the loop's lag
  // (a loop busy elsewhere delays every request arriving meanwhile), and every
  // PROBES_PER_WINDOW probes ends the controller's window, granting queued acquire() calls any
  // slots it added. Never fails. Until it runs, the slots stay at the controller's first count.

  kj::Promise<Slot> acquire();
  // A slot once one is free, in the order of the calls (FIFO). Fails OVERLOADED, naming the
  // limit, when `maxWaiters` calls wait already. Dropping the promise gives up the place in the
  // queue (and the slot, if it was granted meanwhile).

  void foreground(int64_t micros);
  // A sample of a foreground storage operation: it took `micros`.

  template <typename Func>
  auto timed(Func&& operation) -> decltype(operation());
  // Calls operation() and records, as a foreground sample, the time from the call until its
  // result is there: at once for a plain value, when it resolves or fails for a kj::Promise.
  // An operation that throws at once records nothing.

  AdmissionStats stats() const;

 private:
  kj::Timer& timer_;
  const kj::MonotonicClock& clock_;
  size_t maxWaiters_;
  AdmissionController controller_;
  uint32_t inUse_ = 0;
  std::deque<kj::Own<kj::PromiseFulfiller<Slot>>> waiters_;
  // Invariant: waiters_ is empty or inUse_ >= controller_.slots().

  kj::Promise<void> probe(uint32_t probes);
  void release();
  void grant();
  int64_t microsSince(kj::TimePoint start) const;

  // timed()'s second half, by the kind of result: a plain value is there already; a promise
  // has settled once it resolves or fails.
  template <typename T>
  T recordWhenSettled(T result, kj::TimePoint start);
  template <typename T>
  kj::Promise<T> recordWhenSettled(kj::Promise<T> operation, kj::TimePoint start);
  kj::Promise<void> recordWhenSettled(kj::Promise<void> operation, kj::TimePoint start);
};

kj::Promise<BackgroundAdmission::Slot> acquireSlot(BackgroundAdmission* admission);
// admission->acquire(), or, for a null admission (a job run unthrottled, as in tests that
// examine the job alone), an empty Slot at once.

// ---- inline implementation ----

template <typename Func>
auto BackgroundAdmission::timed(Func&& operation) -> decltype(operation()) {
  auto start = clock_.now();
  return recordWhenSettled(operation(), start);
}

template <typename T>
T BackgroundAdmission::recordWhenSettled(T result, kj::TimePoint start) {
  foreground(microsSince(start));
  return result;
}

template <typename T>
kj::Promise<T> BackgroundAdmission::recordWhenSettled(kj::Promise<T> operation,
                                                      kj::TimePoint start) {
  return operation.then(
      [this, start](T&& result) {
        foreground(microsSince(start));
        return kj::mv(result);
      },
      [this, start](kj::Exception&& e) -> T {
        foreground(microsSince(start));
        kj::throwFatalException(kj::mv(e));
      });
}

}  // namespace dynkv::storaged
