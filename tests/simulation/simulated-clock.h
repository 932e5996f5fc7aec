// The simulations' one clock: simulated time and the events due at each moment. Nothing
// happens between events, so a run of minutes takes as long as its events take to process,
// and the same seed replays the same run.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

namespace dynkv::sim {

using Micros = int64_t;

class SimulatedClock {
 public:
  Micros now() const { return now_; }

  void at(Micros when, std::function<void()> action) {
    // Runs `action` at `when` (not before now). Events due at the same time run in the order
    // they were scheduled.
    events_.push(Event{std::max(when, now_), sequence_++, std::move(action)});
  }

  void runUntil(Micros when) {
    // Runs every event due by `when`, in time order (including those they schedule), then
    // moves the clock to `when`.
    while (!events_.empty() && events_.top().when <= when) {
      // Moved out before popping: the action may schedule more events.
      auto action = std::move(const_cast<Event&>(events_.top()).action);
      now_ = events_.top().when;
      events_.pop();
      action();
    }
    now_ = std::max(now_, when);
  }

  void runUntilIdle(Micros limit) {
    // Runs events until none is left or the next is due after `limit`.
    while (!events_.empty() && events_.top().when <= limit) runUntil(events_.top().when);
  }

 private:
  struct Event {
    Micros when;
    uint64_t sequence;
    std::function<void()> action;
    bool operator>(const Event& o) const {
      return when != o.when ? when > o.when : sequence > o.sequence;
    }
  };
  Micros now_ = 0;
  uint64_t sequence_ = 0;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
};

}  // namespace dynkv::sim
