// storaged's admission shell (storaged/admission.h) on driven time: the slots it hands out, the
// queue of background operations waiting for one, and the foreground it measures, the
// operations' latency and the loop's lag.
#include "admission.h"

#include <kj/async.h>
#include <kj/debug.h>

#include <catch2/catch.hpp>
#include <optional>
#include <vector>

#include "driven-admission.h"

namespace dynkv::storaged {
namespace {

using Slot = BackgroundAdmission::Slot;

AdmissionOptions upTo(uint32_t maxSlots, bool enabled = true) {
  AdmissionOptions o;
  o.minSlots = 1;
  o.maxSlots = maxSlots;
  o.targetMicros = 10 * 1000;
  o.enabled = enabled;
  return o;
}

struct Fixture {
  kj::EventLoop loop;
  kj::WaitScope waitScope{loop};
  DrivenAdmission driven;
  BackgroundAdmission& admission = driven.admission;

  explicit Fixture(AdmissionOptions options, size_t maxWaiters = BackgroundAdmission::MAX_WAITERS)
      : driven(waitScope, options, maxWaiters) {}

  Slot take() {
    // A slot that must be free now.
    auto promise = admission.acquire();
    REQUIRE(promise.poll(waitScope));
    return promise.wait(waitScope);
  }

  std::vector<Slot> takeAll() {
    std::vector<Slot> held;
    for (uint32_t i = admission.stats().inUse; i < admission.stats().slots; i++) {
      held.push_back(take());
    }
    return held;
  }
};

TEST_CASE("admission shell: slots start at the minimum and grow by one each calm window") {
  Fixture f(upTo(4));
  CHECK(f.admission.stats().slots == 1);
  auto first = f.take();
  auto second = f.admission.acquire();
  CHECK_FALSE(second.poll(f.waitScope));  // one slot, and it is held

  f.driven.windows(1);
  CHECK(f.admission.stats().slots == 2);
  CHECK(second.poll(f.waitScope));  // the window's new slot went to the waiting operation
  CHECK(f.admission.stats().inUse == 2);

  f.driven.windows(5);
  CHECK(f.admission.stats().slots == 4);
  CHECK(f.admission.stats().foregroundP99Micros == 0);  // an idle node: no lag, no operations
}

TEST_CASE("admission shell: foreground operations slower than the target halve the slots") {
  Fixture f(upTo(8));
  f.driven.windows(7);
  REQUIRE(f.admission.stats().slots == 8);

  // A write that waits 50 ms for its commit, timed as LocalReplica times it (and awaited at
  // once, as the RPC layer awaits an answer).
  auto write = f.admission.timed([&]() { return f.driven.timer.afterDelay(50 * kj::MILLISECONDS); })
                   .eagerlyEvaluate(nullptr);
  f.driven.windows(1);
  REQUIRE(write.poll(f.waitScope));
  CHECK(f.admission.stats().slots == 4);
  CHECK(f.admission.stats().operationP99Micros == 50 * 1000);
  CHECK(f.admission.stats().operationSamples == 1);

  // An operation that fails is a sample too; one with a plain value is timed at once.
  auto failed = f.admission
                    .timed([&]() {
                      return f.driven.timer.afterDelay(50 * kj::MILLISECONDS)
                          .then([]() -> kj::Promise<int> {
                            return KJ_EXCEPTION(FAILED, "disk full");
                          });
                    })
                    .eagerlyEvaluate(nullptr);
  CHECK(f.admission.timed([]() { return 7; }) == 7);
  f.driven.windows(1);
  CHECK_THROWS_WITH(failed.wait(f.waitScope), Catch::Contains("disk full"));
  CHECK(f.admission.stats().slots == 2);
  CHECK(f.admission.stats().operationSamples == 2);
  CHECK(f.admission.stats().operationP99Micros == 50 * 1000);

  // A calm foreground again: the slots come back one a window.
  f.driven.windows(3);
  CHECK(f.admission.stats().slots == 5);
}

TEST_CASE("admission shell: a stalled event loop halves the slots, however fast the operations") {
  Fixture f(upTo(8));
  f.driven.windows(7);
  REQUIRE(f.admission.stats().slots == 8);

  for (int i = 0; i < 100; i++) f.admission.foreground(200);
  f.driven.stall(300 * kj::MILLISECONDS);  // the probe due after 50 ms fires 250 ms late
  f.driven.probes(BackgroundAdmission::PROBES_PER_WINDOW - 1);  // the rest of the window
  auto stats = f.admission.stats();
  CHECK(stats.slots == 4);
  CHECK(stats.loopLagP99Micros == 250 * 1000);
  CHECK(stats.operationP99Micros == 200);
  CHECK(stats.foregroundP99Micros == 250 * 1000);
}

TEST_CASE("admission shell: waiters are served in order, and one that gives up loses its place") {
  Fixture f(upTo(1));
  std::optional<Slot> held = f.take();
  std::vector<int> served;
  auto first = f.admission.acquire().then([&](Slot slot) {
    served.push_back(1);
    return slot;
  });
  auto gaveUp = f.admission.acquire().then([&](Slot slot) {
    served.push_back(2);
    return slot;
  });
  auto third = f.admission.acquire().then([&](Slot slot) {
    served.push_back(3);
    return slot;
  });
  gaveUp = nullptr;

  held.reset();  // the slot goes back when its holder is destroyed
  auto firstSlot = first.wait(f.waitScope);
  CHECK(served == std::vector<int>{1});
  CHECK_FALSE(third.poll(f.waitScope));

  firstSlot = Slot();  // assigning over a slot returns it too
  third.wait(f.waitScope);
  CHECK(served == std::vector<int>{1, 3});
  CHECK(f.admission.stats().inUse == 0);  // the third's slot went with its promise
}

TEST_CASE("admission shell: the queue is bounded, and past it acquire fails OVERLOADED") {
  Fixture f(upTo(1), 2);
  auto held = f.take();
  auto a = f.admission.acquire();
  auto b = f.admission.acquire();
  auto refused = f.admission.acquire();
  REQUIRE(refused.poll(f.waitScope));
  try {
    refused.wait(f.waitScope);
    FAIL("acquire past the queue's limit succeeded");
  } catch (const kj::Exception& e) {
    CHECK(e.getType() == kj::Exception::Type::OVERLOADED);
    CHECK_THAT(e.getDescription().cStr(),
               Catch::Contains("too many background operations wait for a slot"));
  }

  // A waiter that gave up makes room.
  a = nullptr;
  auto c = f.admission.acquire();
  CHECK_FALSE(c.poll(f.waitScope));
  CHECK(f.admission.stats().waiting == 2);
}

TEST_CASE("admission shell: slots taken away are not taken back, and new operations wait for them") {
  Fixture f(upTo(4));
  f.driven.windows(3);
  auto held = f.takeAll();
  REQUIRE(held.size() == 4);

  f.driven.stall(100 * kj::MILLISECONDS);
  f.driven.probes(BackgroundAdmission::PROBES_PER_WINDOW - 1);
  REQUIRE(f.admission.stats().slots == 2);
  CHECK(f.admission.stats().inUse == 4);  // those running keep running

  auto waiting = f.admission.acquire();
  held.pop_back();
  held.pop_back();
  CHECK_FALSE(waiting.poll(f.waitScope));  // 2 in use of 2
  held.pop_back();
  CHECK(waiting.poll(f.waitScope));
}

TEST_CASE("admission shell: disabled, every slot is there at once whatever the foreground") {
  Fixture f(upTo(4, false));
  CHECK_FALSE(f.admission.stats().enabled);
  auto held = f.takeAll();
  CHECK(held.size() == 4);
  f.driven.stall(500 * kj::MILLISECONDS);
  f.driven.probes(BackgroundAdmission::PROBES_PER_WINDOW - 1);
  CHECK(f.admission.stats().slots == 4);
  CHECK(f.admission.stats().foregroundP99Micros == 450 * 1000);  // measured all the same
}

TEST_CASE("admission shell: without an admission a job gets an empty slot at once") {
  kj::EventLoop loop;
  kj::WaitScope waitScope(loop);
  auto promise = acquireSlot(nullptr);
  REQUIRE(promise.poll(waitScope));
  CHECK_FALSE(promise.wait(waitScope).held());
}

}  // namespace
}  // namespace dynkv::storaged
