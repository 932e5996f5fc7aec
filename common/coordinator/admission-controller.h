// Admission control for background work (DESIGN.md, "Anti-entropy"; the paper's section 6.5):
// anti-entropy, hint delivery, partition transfer and tombstone collection share a number of
// slots, and a feedback loop on the node's foreground latency decides how many there are, so a
// recovery or a repair storm does not wreck the foreground's tail latency.
//
// Pure: the foreground samples come in as numbers (microseconds), and the shell says when a
// window ends (tick()); no clock, no I/O, no allocation after construction. storaged/admission.h
// is the shell that measures, ticks and hands the slots out.
//
// The loop, in the paper's words: "monitors the behavior of resource accesses while executing a
// foreground put/get operation", checks "whether the percentiles of latencies ... in a given
// trailing time window are close to a desired threshold", and "decides on how many time slices
// will be available to background tasks". Here:
//
// - Two signals. The latency of this node's own foreground storage operations (a get, a put
//   including its wait for the group commit: the paper's "latencies for disk operations"), and
//   the event loop's lag (how late a periodic timer fires: the paper's "request queue wait
//   times", the delay every request arriving at that moment suffers before it is even read).
//   They are kept apart because their rates differ by orders of magnitude: mixed, a busy node's
//   thousands of operations would drown the few lag probes, and a stalled loop would not count.
// - One window per tick (the shell ticks every 200 ms). The window's p99 of each signal is
//   compared with the target; the worse of the two decides. A short window, unlike the paper's
//   60 s, lets the loop react within a fraction of a second; the noise that comes with it is
//   cheap, because a wrong decrease is undone in a few windows.
// - AIMD, as TCP's congestion window: a window above the target halves the slots (never below
//   minSlots, so background work never starves entirely: hints still drain, a transfer still
//   ends); a window at or below it, or with no samples at all (an idle node), adds one slot (never
//   above maxSlots). Halving backs off fast when background work hurts; the additive step probes
//   for capacity slowly, so the foreground spends little time above the target, and a node
//   that was throttled to one slot is back at 8 in 1.4 s of calm.
// - The target is a fixed threshold, as in the paper ("a preset threshold (say 50ms)"), not a
//   baseline learnt at run time: a node that is never idle would never learn one, and one
//   learnt while a background job ran would bless that job's cost. The default, 10 ms for the
//   p99 of a local storage operation (or of the loop's lag), is a third of the 30 ms the paper
//   measured for the 99.9th percentile of a whole client-driven request: what one replica may
//   spend of it. An fsync-bound disk that needs more sets --admission-target-ms.
// - The slots start at minSlots: a node that has just started is the one most likely to be
//   recovering, and it earns its slots in its first second or two.
//
// Memory is fixed whatever the load: each signal is a histogram of log-linear buckets (exact
// below 16 us, then 8 per power of two, so a percentile is at most 12.5% high), cleared at
// each tick.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace dynkv {

class LatencyHistogram {
  // Samples in microseconds, counted in fixed buckets. A value type of fixed size.
 public:
  void add(int64_t micros);
  // A negative sample counts as 0; one of 2^36 us (19 hours) or more lands in the last bucket.

  int64_t p99() const;
  // The smallest bucket bound that at least 99% of the samples are at or below, but never more
  // than the largest sample: at most 12.5% above the exact 99th percentile, never below it
  // (exact below 16 us). With fewer than 100 samples that is the largest one. 0 when empty.

  uint64_t count() const { return count_; }
  void clear();

  static constexpr size_t BUCKETS = 272;

 private:
  std::array<uint64_t, BUCKETS> counts_{};
  uint64_t count_ = 0;
  int64_t max_ = 0;
};

struct AdmissionOptions {
  bool enabled = true;  // false: maxSlots always (a benchmark "without admission control")
  int64_t targetMicros = 10 * 1000;  // the p99 of either signal a window may reach
  uint32_t minSlots = 1;             // >= 1: background work never stops entirely
  uint32_t maxSlots = 8;             // >= minSlots
};

class AdmissionController {
 public:
  explicit AdmissionController(AdmissionOptions options = {});
  // Throws (KJ_REQUIRE) unless 1 <= minSlots <= maxSlots and targetMicros > 0. Starts at
  // minSlots (maxSlots when disabled).

  void observeOperation(int64_t micros);
  // A foreground storage operation of this node took `micros`, from its call to its completion.
  void observeLoopLag(int64_t micros);
  // The event loop ran a timer `micros` after it was due.

  uint32_t tick();
  // Ends the window: computes its p99s, decides, starts an empty window. Returns slots().

  uint32_t slots() const { return slots_; }
  // How many background operations may run at once now; in [minSlots, maxSlots].
  bool enabled() const { return options_.enabled; }
  const AdmissionOptions& options() const { return options_; }

  int64_t lastP99Micros() const;
  // What the last tick compared with the target: the worse of the two p99s of its window (0 for
  // a window without samples, or before the first tick). Measured when disabled too.
  int64_t lastOperationP99Micros() const { return lastOperationP99_; }
  int64_t lastLoopLagP99Micros() const { return lastLoopLagP99_; }
  uint64_t lastOperationSamples() const { return lastOperationSamples_; }
  // How many foreground operations the last window saw.

 private:
  AdmissionOptions options_;
  uint32_t slots_;
  LatencyHistogram operations_;
  LatencyHistogram loopLag_;
  int64_t lastOperationP99_ = 0;
  int64_t lastLoopLagP99_ = 0;
  uint64_t lastOperationSamples_ = 0;
};

}  // namespace dynkv
