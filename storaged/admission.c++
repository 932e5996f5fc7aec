#include "admission.h"

#include <kj/debug.h>

#include <algorithm>

namespace dynkv::storaged {

BackgroundAdmission::Slot& BackgroundAdmission::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr) owner_->release();
    owner_ = other.owner_;
    other.owner_ = nullptr;
  }
  return *this;
}

BackgroundAdmission::Slot::~Slot() noexcept {
  if (owner_ != nullptr) owner_->release();
}

BackgroundAdmission::BackgroundAdmission(kj::Timer& timer, AdmissionOptions options,
                                         size_t maxWaiters, const kj::MonotonicClock& clock)
    : timer_(timer), clock_(clock), maxWaiters_(maxWaiters), controller_(options) {}

kj::Promise<void> BackgroundAdmission::run() { return probe(0); }

kj::Promise<void> BackgroundAdmission::probe(uint32_t probes) {
  // The lag is measured against the time the probe was due, on the timer the event loop
  // advances when it gets round to it: a loop kept busy (a long scan, a slow commit on the
  // loop's thread, a flood of events) fires it late by as much as a request arriving then waits.
  auto due = timer_.now() + PROBE_INTERVAL;
  return timer_.atTime(due).then([this, due, probes]() {
    controller_.observeLoopLag((timer_.now() - due) / kj::MICROSECONDS);
    uint32_t next = (probes + 1) % PROBES_PER_WINDOW;
    if (next == 0) {
      controller_.tick();
      grant();
    }
    return probe(next);
  });
}

kj::Promise<BackgroundAdmission::Slot> BackgroundAdmission::acquire() {
  if (waiters_.empty() && inUse_ < controller_.slots()) {
    inUse_++;
    return Slot(*this);
  }
  if (waiters_.size() >= maxWaiters_) {
    // Callers that gave up still hold places until grant() passes them; make room first.
    waiters_.erase(std::remove_if(waiters_.begin(), waiters_.end(),
                                  [](auto& waiter) { return !waiter->isWaiting(); }),
                   waiters_.end());
    if (waiters_.size() >= maxWaiters_) {
      return KJ_EXCEPTION(OVERLOADED,
                          "background admission: too many background operations wait for a slot",
                          maxWaiters_, controller_.slots());
    }
  }
  auto paf = kj::newPromiseAndFulfiller<Slot>();
  waiters_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

void BackgroundAdmission::release() {
  KJ_ASSERT(inUse_ > 0, "a slot returned twice");
  inUse_--;
  grant();
}

void BackgroundAdmission::grant() {
  while (inUse_ < controller_.slots() && !waiters_.empty()) {
    auto waiter = kj::mv(waiters_.front());
    waiters_.pop_front();
    if (!waiter->isWaiting()) continue;  // its caller gave up
    inUse_++;
    waiter->fulfill(Slot(*this));
  }
}

void BackgroundAdmission::foreground(int64_t micros) { controller_.observeOperation(micros); }

int64_t BackgroundAdmission::microsSince(kj::TimePoint start) const {
  return (clock_.now() - start) / kj::MICROSECONDS;
}

kj::Promise<void> BackgroundAdmission::recordWhenSettled(kj::Promise<void> operation,
                                                         kj::TimePoint start) {
  return operation.then([this, start]() { foreground(microsSince(start)); },
                        [this, start](kj::Exception&& e) {
                          foreground(microsSince(start));
                          kj::throwFatalException(kj::mv(e));
                        });
}

AdmissionStats BackgroundAdmission::stats() const {
  AdmissionStats out;
  out.slots = controller_.slots();
  out.inUse = inUse_;
  out.waiting = waiters_.size();
  out.enabled = controller_.enabled();
  out.foregroundP99Micros = controller_.lastP99Micros();
  out.operationP99Micros = controller_.lastOperationP99Micros();
  out.loopLagP99Micros = controller_.lastLoopLagP99Micros();
  out.operationSamples = controller_.lastOperationSamples();
  return out;
}

kj::Promise<BackgroundAdmission::Slot> acquireSlot(BackgroundAdmission* admission) {
  if (admission == nullptr) return BackgroundAdmission::Slot();
  return admission->acquire();
}

}  // namespace dynkv::storaged
