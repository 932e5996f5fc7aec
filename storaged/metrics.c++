#include "metrics.h"

#include <cmath>
#include <cstdio>

namespace dynkv::storaged {

void LatencyHistogram::record(uint64_t micros) {
  size_t i = 0;
  while (i < BUCKETS && micros > BOUNDS_MICROS[i]) i++;
  counts_[i]++;
  count_++;
  sumMicros_ += micros;
}

uint64_t LatencyHistogram::quantileMicros(double q) const {
  if (count_ == 0) return 0;
  // The rank of the q-th quantile, 1-based: the smallest that covers q of the samples.
  auto rank = uint64_t(std::ceil(q * double(count_)));
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < BUCKETS; i++) {
    seen += counts_[i];
    if (seen >= rank) return BOUNDS_MICROS[i];
  }
  return BOUNDS_MICROS[BUCKETS - 1];
}

const char* opLabel(Operation op) {
  switch (op) {
    case Operation::COORDINATOR_GET:
    case Operation::REPLICA_GET:
      return "get";
    case Operation::COORDINATOR_DELETE:
      return "delete";
    case Operation::COORDINATOR_PUT:
    case Operation::REPLICA_PUT:
    case Operation::HINT_PUT:
      return "put";
  }
  return "unknown";
}

const char* roleLabel(Operation op) {
  switch (op) {
    case Operation::COORDINATOR_GET:
    case Operation::COORDINATOR_PUT:
    case Operation::COORDINATOR_DELETE:
      return "coordinator";
    case Operation::REPLICA_GET:
    case Operation::REPLICA_PUT:
      return "replica";
    case Operation::HINT_PUT:
      return "fallback";
  }
  return "unknown";
}

const char* refusalLabel(Refusal r) {
  switch (r) {
    case Refusal::STALE:
      return "stale";
    case Refusal::AUTHENTICATION:
      return "authentication";
    case Refusal::CONNECTIONS:
      return "connections";
    case Refusal::HTTP:
      return "http";
    case Refusal::TOO_LATE:
      return "too_late";
    case Refusal::CONNECTIONS_PER_ADDRESS:
      return "connections_per_address";
    case Refusal::ACCEPT_FAILED:
      return "accept_failed";
    case Refusal::HANDSHAKE_TIMEOUT:
      return "handshake_timeout";
    case Refusal::SLOW_READER:
      return "slow_reader";
    case Refusal::MESSAGE_TOO_LARGE:
      return "message_too_large";
    case Refusal::TLS_HANDSHAKE:
      return "tls_handshake";
  }
  return "unknown";
}

void Metrics::recordRequest(Operation op, uint64_t micros, bool failed) {
  latency_[size_t(op)].record(micros);
  if (failed) failures_[size_t(op)]++;
}

void Metrics::refused(Refusal why, uint64_t n) { refusals_[size_t(why)] += n; }

uint64_t Metrics::refusals(Refusal why) const {
  uint64_t n = refusals_[size_t(why)];
  switch (why) {
    case Refusal::CONNECTIONS:
      return n + rpcConnections.refused;
    case Refusal::CONNECTIONS_PER_ADDRESS:
      return n + rpcConnections.refusedPerAddress;
    case Refusal::ACCEPT_FAILED:
      return n + rpcConnections.acceptFailures;
    case Refusal::HANDSHAKE_TIMEOUT:
      return n + rpcConnections.handshakeTimeouts + rpcConnections.handshakesEvicted;
    case Refusal::SLOW_READER:
      return n + rpcConnections.slowReadersCut;
    case Refusal::MESSAGE_TOO_LARGE:
      return n + rpcConnections.messagesTooLarge;
    case Refusal::TLS_HANDSHAKE:
      return n + rpcConnections.tlsHandshakesFailed;
    default:
      return n;
  }
}

namespace {

std::string escaped(const std::string& text, bool quoteToo) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quoteToo) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` with `extra` (le) last; empty when there are no labels.
std::string labelText(const std::vector<std::pair<std::string, std::string>>& labels,
                      const char* extraName = nullptr, const std::string& extraValue = "") {
  std::string out;
  for (auto& [name, value] : labels) {
    out += (out.empty() ? "{" : ",") + name + "=\"" + escaped(value, true) + "\"";
  }
  if (extraName != nullptr) {
    out += (out.empty() ? "{" : ",") + std::string(extraName) + "=\"" + extraValue + "\"";
  }
  return out.empty() ? out : out + "}";
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Integers (every counter) print exactly; fractions with enough digits to read back.
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    snprintf(buf, sizeof(buf), "%.0f", v);
  } else {
    snprintf(buf, sizeof(buf), "%.9g", v);
  }
  return buf;
}

const char* typeName(MetricFamily::Type type) {
  switch (type) {
    case MetricFamily::Type::COUNTER:
      return "counter";
    case MetricFamily::Type::GAUGE:
      return "gauge";
    case MetricFamily::Type::HISTOGRAM:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

std::string formatPrometheus(const std::vector<MetricFamily>& families) {
  std::string out;
  for (auto& f : families) {
    if (f.samples.empty() && f.histograms.empty()) continue;
    out += "# HELP " + f.name + " " + escaped(f.help, false) + "\n";
    out += "# TYPE " + f.name + " " + typeName(f.type) + "\n";
    for (auto& s : f.samples) out += f.name + labelText(s.labels) + " " + number(s.value) + "\n";
    for (auto& h : f.histograms) {
      uint64_t cumulative = 0;
      auto& counts = h.histogram->counts();
      for (size_t i = 0; i < LatencyHistogram::BUCKETS; i++) {
        cumulative += counts[i];
        auto le = number(double(LatencyHistogram::BOUNDS_MICROS[i]) / 1e6);
        out += f.name + "_bucket" + labelText(h.labels, "le", le) + " " +
               std::to_string(cumulative) + "\n";
      }
      out += f.name + "_bucket" + labelText(h.labels, "le", "+Inf") + " " +
             std::to_string(h.histogram->count()) + "\n";
      out += f.name + "_sum" + labelText(h.labels) + " " +
             number(double(h.histogram->sumMicros()) / 1e6) + "\n";
      out += f.name + "_count" + labelText(h.labels) + " " +
             std::to_string(h.histogram->count()) + "\n";
    }
  }
  return out;
}

std::vector<MetricFamily> requestFamilies(const Metrics& metrics) {
  MetricFamily requests{"dynkv_requests_total", "Requests this node answered, by operation and "
                        "by the role it took in them", MetricFamily::Type::COUNTER, {}, {}};
  MetricFamily failures{"dynkv_request_failures_total", "Requests this node answered with an "
                        "error", MetricFamily::Type::COUNTER, {}, {}};
  MetricFamily latency{"dynkv_request_duration_seconds", "Time from reading a request to "
                       "answering it", MetricFamily::Type::HISTOGRAM, {}, {}};
  for (size_t i = 0; i < OPERATIONS; i++) {
    auto op = Operation(i);
    std::vector<std::pair<std::string, std::string>> labels = {{"op", opLabel(op)},
                                                               {"role", roleLabel(op)}};
    requests.samples.push_back({labels, double(metrics.latency(op).count())});
    failures.samples.push_back({labels, double(metrics.failures(op))});
    latency.histograms.push_back({labels, &metrics.latency(op)});
  }
  MetricFamily refused{"dynkv_refused_total", "Requests and connections turned away unserved, "
                       "by reason", MetricFamily::Type::COUNTER, {}, {}};
  for (size_t i = 0; i < REFUSALS; i++) {
    refused.samples.push_back(
        {{{"reason", refusalLabel(Refusal(i))}}, double(metrics.refusals(Refusal(i)))});
  }
  std::vector<MetricFamily> out;
  out.push_back(std::move(requests));
  out.push_back(std::move(failures));
  out.push_back(std::move(latency));
  out.push_back(std::move(refused));
  return out;
}

}  // namespace dynkv::storaged
