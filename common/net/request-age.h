// How long a request waited between its sender and this process reading it, measured without
// comparing two hosts' wall clocks. A coordinatePut that a paused or cut-off node reads only
// after its sender gave up on it must not be minted: the sender has meanwhile had the write
// coordinated by another replica, and a second version of the same write would be concurrent
// with everything after it (a later delete that saw only the first would leave it standing).
//
// Each request carries the time it was sent on the sender's monotonic clock. Per sender clock,
// (received - sent) is the one-way delay plus a constant offset between the two clocks; its
// minimum over the requests stamped on that clock is the offset plus the shortest delay. A request's
// age is its (received - sent) less that minimum: the time it waited longer than the fastest
// request did. The minimum is allowed to rise by DRIFT per elapsed second, so that two clocks
// running at slightly different rates never make fresh requests look old.
//
// RequestAge is pure: times come in as values (microseconds). One per sender clock (storaged
// shares it among the connections of one sending process: monotonicClockId()); not
// thread-safe. monotonicMicros() is the clock both sides stamp and read with.
#pragma once

#include <cstdint>
#include <optional>

namespace dynkv {

class RequestAge {
 public:
  static constexpr double DRIFT = 1e-3;  // 1 ms per second, far above any real clock's skew

  int64_t observe(int64_t sentMicros, int64_t receivedMicros);
  // The request's age on arrival: how much longer than the fastest request of this connection
  // it took to be read (0 for the first one, and for any request at least as fast).

  int64_t ageAt(int64_t sentMicros, int64_t nowMicros) const;
  // How long a request observed earlier has waited by `nowMicros`, measured against the
  // fastest request as observe() does but without changing anything: whether its sender is
  // still waiting for the answer that is ready now (0 before any request was observed).

 private:
  std::optional<int64_t> floor_;  // the smallest (received - sent) seen, aged to floorAt_
  int64_t floorAt_ = 0;           // received time of the request that set floor_
};

bool abandonedRequest(int64_t ageMicros, uint64_t patienceMicros);
// True when the sender has certainly stopped waiting for the answer: the request is at least
// `patienceMicros` old (ages are never overestimated). 0 patience: never.

int64_t monotonicMicros();
// This host's monotonic clock (kj's), in microseconds: never jumps with the wall clock.

uint64_t monotonicClockId();
// Names this process's monotonicMicros() to receivers (Gateway.authenticate's `clock`): a
// random non-zero number drawn once per process, so that a receiver can share one RequestAge
// among every connection whose requests are stamped on the same clock.

bool staleRequest(int64_t ageMicros, uint64_t patienceMicros);
// True when a request this old should be refused rather than acted on: its sender waits
// `patienceMicros` for the answer (0: it did not say, never stale) and the request has used
// half of that before this node read it, so an answer may well come too late. Refusing is
// cheap (the sender asks another replica at once); acting on a request the sender abandoned
// is not.

}  // namespace dynkv
