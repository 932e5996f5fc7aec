// What a node counts about itself for its HTTP port (http-status.h): request counts and
// latencies, refusals, and the Prometheus text format they are scraped in.
//
// I/O-free and clock-free: the service records durations it measured, the HTTP shell reads the
// registry and formats it. Everything here is used on the node's event-loop thread only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "net/accept-loop.h"

namespace dynkv::storaged {

class LatencyHistogram {
  // Counts of durations by fixed bucket, as Prometheus histograms keep them: cheap to record
  // (one comparison loop, no allocation) and enough for a p50/p99 within a bucket's width.
 public:
  static constexpr size_t BUCKETS = 16;
  static constexpr std::array<uint64_t, BUCKETS> BOUNDS_MICROS = {
      50,    100,    250,    500,    1000,    2500,    5000,    10000,
      25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};
  // Upper bounds, inclusive; a duration past the last falls in the +Inf bucket.

  void record(uint64_t micros);

  uint64_t count() const { return count_; }
  uint64_t sumMicros() const { return sumMicros_; }
  const std::array<uint64_t, BUCKETS + 1>& counts() const { return counts_; }
  // Per bucket, not cumulative; the last is +Inf.

  uint64_t quantileMicros(double q) const;
  // The upper bound of the bucket that holds the q-th quantile (0 < q ≤ 1): an estimate no
  // lower than the true value. 0 when nothing was recorded; past the last bound, the largest
  // bound.

 private:
  std::array<uint64_t, BUCKETS + 1> counts_{};
  uint64_t count_ = 0;
  uint64_t sumMicros_ = 0;
};

enum class Operation : uint8_t {
  // What a node is asked to do, as the `op` and `role` labels of its request metrics name it.
  COORDINATOR_GET,     // server-driven coordinated read
  COORDINATOR_PUT,     // coordinatePut of a value, or a server-driven write
  COORDINATOR_DELETE,  // the same for a tombstone
  REPLICA_GET,         // a client's or coordinator's read of this replica's copy
  REPLICA_PUT,         // replicate to this node as an owner
  HINT_PUT,            // replicate to this node as a fallback (sloppy quorum): kept as a hint
};
constexpr size_t OPERATIONS = 6;

const char* opLabel(Operation op);    // get | put | delete
const char* roleLabel(Operation op);  // coordinator | replica | fallback

enum class Refusal : uint8_t {
  // Why a node turned a request or a connection away without doing it.
  STALE,           // a write read too late: its sender had given up on it (request-age.h)
  AUTHENTICATION,  // a wrong cluster secret, or too many attempts on one connection
  CONNECTIONS,     // the limit of open RPC connections was reached
  HTTP,            // an HTTP request refused: bad method, too large, too many connections
  TOO_LATE,        // a coordinated write taken back: its sender had stopped waiting for it
  CONNECTIONS_PER_ADDRESS,  // the limit of open RPC connections from one address was reached
  ACCEPT_FAILED,   // accepting a connection failed (no descriptor left, say); retried
  HANDSHAKE_TIMEOUT,  // a connection closed: not authenticated in time, or the oldest of too
                      // many handshakes at once
  SLOW_READER,     // a connection cut: its peer left its answers unread too long
  MESSAGE_TOO_LARGE,  // a connection closed: a message declared more than allowed
  TLS_HANDSHAKE,   // a connection closed: its TLS handshake failed (no certificate of the CA)
};
constexpr size_t REFUSALS = 11;

const char* refusalLabel(Refusal r);
// stale | authentication | connections | http | too_late | connections_per_address |
// accept_failed | handshake_timeout | slow_reader | message_too_large | tls_handshake

class Metrics {
  // The node's request registry. The service records into it; nothing here does I/O.
 public:
  void recordRequest(Operation op, uint64_t micros, bool failed);
  void refused(Refusal why, uint64_t n = 1);

  const LatencyHistogram& latency(Operation op) const { return latency_[size_t(op)]; }
  uint64_t failures(Operation op) const { return failures_[size_t(op)]; }
  uint64_t refusals(Refusal why) const;

  AcceptCounters rpcConnections;
  // The RPC listener's open connections, the connections it refused and those it closed at a
  // limit: the accept loop keeps them (AcceptOptions::counters).

 private:
  std::array<LatencyHistogram, OPERATIONS> latency_;
  std::array<uint64_t, OPERATIONS> failures_{};
  std::array<uint64_t, REFUSALS> refusals_{};
};

// ---- the Prometheus text exposition format ----

struct Sample {
  std::vector<std::pair<std::string, std::string>> labels;  // name, value (unescaped)
  double value = 0;
};

struct HistogramSample {
  std::vector<std::pair<std::string, std::string>> labels;
  const LatencyHistogram* histogram = nullptr;  // exported in seconds
};

struct MetricFamily {
  enum class Type { COUNTER, GAUGE, HISTOGRAM };
  std::string name;  // counters end in _total
  std::string help;
  Type type = Type::GAUGE;
  std::vector<Sample> samples;              // COUNTER and GAUGE
  std::vector<HistogramSample> histograms;  // HISTOGRAM
};

std::string formatPrometheus(const std::vector<MetricFamily>& families);
// The text exposition format, version 0.0.4: for each family `# HELP` and `# TYPE`, then its
// samples, one per line; a histogram as cumulative `_bucket{le="..."}` lines ending in
// `le="+Inf"`, then `_sum` and `_count`. Label values and help are escaped as the format says
// (backslash, double quote, newline). A family without samples is left out.

std::vector<MetricFamily> requestFamilies(const Metrics& metrics);
// The registry's own families: dynkv_requests_total, dynkv_request_failures_total,
// dynkv_request_duration_seconds (by op and role) and dynkv_refused_total (by reason).

}  // namespace dynkv::storaged
