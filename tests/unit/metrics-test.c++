// The request registry, the Prometheus text it is exported in, and the HTTP port's reports
// (storaged/metrics.h, storaged/status-report.h): pure functions, no sockets.
#include <capnp/message.h>
#include <catch2/catch.hpp>
#include <regex>
#include <sstream>

#include "metrics.h"
#include "status-report.h"

namespace dynkv::storaged {
namespace {

// Every line of `text` is a comment (# HELP / # TYPE) or `name{labels} value`, as the text
// exposition format says; returns the first line that is neither, or "".
std::string badLine(const std::string& text) {
  static const std::regex comment(R"(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex sample(
      R"re([a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? )re"
      R"re(([-+]?[0-9.eE+-]+|NaN|[-+]Inf))re");
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (!std::regex_match(line, comment) && !std::regex_match(line, sample)) return line;
  }
  return "";
}

TEST_CASE("metrics: a histogram counts by bucket and estimates quantiles from above") {
  LatencyHistogram h;
  CHECK(h.quantileMicros(0.5) == 0);  // nothing recorded
  for (int i = 0; i < 98; i++) h.record(80);  // the 100 µs bucket
  h.record(3000);                             // 5 ms
  h.record(20000000);                         // past the last bound: +Inf
  CHECK(h.count() == 100);
  CHECK(h.sumMicros() == 98 * 80 + 3000 + 20000000);
  CHECK(h.counts()[1] == 98);
  CHECK(h.counts()[LatencyHistogram::BUCKETS] == 1);
  CHECK(h.quantileMicros(0.5) == 100);
  CHECK(h.quantileMicros(0.99) == 5000);
  CHECK(h.quantileMicros(1.0) == 10000000);
}

TEST_CASE("metrics: the Prometheus text has HELP, TYPE, counters and cumulative buckets") {
  Metrics metrics;
  metrics.recordRequest(Operation::COORDINATOR_PUT, 400, false);
  metrics.recordRequest(Operation::COORDINATOR_PUT, 2000, true);
  metrics.recordRequest(Operation::REPLICA_GET, 60, false);
  metrics.refused(Refusal::STALE, 3);
  metrics.rpcConnections.refused = 2;
  auto text = formatPrometheus(requestFamilies(metrics));
  CHECK(badLine(text) == "");

  CHECK_THAT(text, Catch::Contains("# TYPE dynkv_requests_total counter\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_requests_total{op=\"put\",role=\"coordinator\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_requests_total{op=\"get\",role=\"replica\"} 1\n"));
  CHECK_THAT(text,
             Catch::Contains("dynkv_request_failures_total{op=\"put\",role=\"coordinator\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("# TYPE dynkv_request_duration_seconds histogram\n"));
  // Cumulative: 400 µs is under 0.0005 s, 2000 µs under 0.0025 s; +Inf holds everything.
  CHECK_THAT(text, Catch::Contains("dynkv_request_duration_seconds_bucket{op=\"put\","
                                   "role=\"coordinator\",le=\"0.00025\"} 0\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_request_duration_seconds_bucket{op=\"put\","
                                   "role=\"coordinator\",le=\"0.0005\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_request_duration_seconds_bucket{op=\"put\","
                                   "role=\"coordinator\",le=\"0.0025\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_request_duration_seconds_bucket{op=\"put\","
                                   "role=\"coordinator\",le=\"+Inf\"} 2\n"));
  CHECK_THAT(text, Catch::Contains(
                       "dynkv_request_duration_seconds_sum{op=\"put\",role=\"coordinator\"} "
                       "0.0024\n"));
  CHECK_THAT(text, Catch::Contains(
                       "dynkv_request_duration_seconds_count{op=\"put\",role=\"coordinator\"} "
                       "2\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_refused_total{reason=\"stale\"} 3\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_refused_total{reason=\"connections\"} 2\n"));
}

TEST_CASE("metrics: label values and help text are escaped, empty families left out") {
  LatencyHistogram h;
  MetricFamily f{"x_total", "a \\ help\nline", MetricFamily::Type::COUNTER,
                 {{{{"owner", "a\"b\\c\nd"}}, 1}}, {}};
  MetricFamily empty{"y", "nothing", MetricFamily::Type::GAUGE, {}, {}};
  auto text = formatPrometheus({f, empty});
  CHECK(text == "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\n"
                "x_total{owner=\"a\\\"b\\\\c\\nd\"} 1\n");
  CHECK(badLine(text) == "");
}

// A report as Service fills it: three members, one of them joining, a ring of 8 partitions.
struct ReportFixture {
  capnp::MallocMessageBuilder statsMessage, statusMessage;
  Metrics metrics;
  std::shared_ptr<const PartitionMap> map;
  NodeReport report;

  ReportFixture() {
    auto stats = statsMessage.initRoot<wire::NodeStats>();
    stats.initNode().setAddress("127.0.0.1:7400");
    auto hints = stats.initHints(1);
    hints[0].setOwner(3);
    hints[0].setOwnerAddress("127.0.0.1:7402");
    hints[0].setCount(5);
    auto ae = stats.initAntiEntropy();
    ae.setExchangesFinished(7);
    ae.setKeysRepaired(2);
    ae.setLastCompleteAgeMillis(-1);
    stats.setEngineBytes(1 << 20);
    auto status = statusMessage.initRoot<wire::Admin::StatusResults>();
    status.setReporter("127.0.0.1:7400");
    status.setMapVersion(65537);
    auto members = status.initMembers(3);
    const char* addresses[] = {"127.0.0.1:7400", "127.0.0.1:7401", "127.0.0.1:7402"};
    std::vector<NodeInfo> nodes;
    for (uint32_t i = 0; i < 3; i++) {
      auto m = members[i].initMember();
      m.initInfo().setId(i + 1);
      m.getInfo().setAddress(addresses[i]);
      m.getInfo().setWeight(1);
      m.setHttpAddress(std::string("127.0.0.1:748") + char('0' + i));
      m.setStatus(i == 2 ? wire::MemberStatus::JOINING : wire::MemberStatus::UP);
      members[i].setPartitions(i == 2 ? 0 : 4);
      members[i].setPhi(i == 1 ? std::numeric_limits<double>::infinity() : 0.5);
      if (i < 2) {
        NodeInfo n;
        n.id = i + 1;
        n.address = addresses[i];
        nodes.push_back(n);
      }
    }
    map = std::make_shared<PartitionMap>(
        *PartitionMap::fromParts(65537, 3, nodes, {0, 1, 0, 1, 0, 1, 0, 1}, nullptr));
    metrics.recordRequest(Operation::REPLICA_GET, 700, false);
    report.stats = stats.asReader();
    report.status = status.asReader();
    report.map = map.get();
    report.metrics = &metrics;
    report.pendingTransfers = 1;
    report.keys = 42;
  }
};

TEST_CASE("metrics: a node's /metrics has hints by owner, anti-entropy and members") {
  ReportFixture f;
  auto text = metricsText(f.report);
  CHECK(badLine(text) == "");
  CHECK_THAT(text, Catch::Contains("dynkv_hints_held{owner=\"127.0.0.1:7402\"} 5\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_anti_entropy_exchanges_total 7\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_anti_entropy_keys_repaired_total 2\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_anti_entropy_last_complete_age_seconds -1\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_transfers_pending 1\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_engine_keys 42\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_engine_bytes 1048576\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_members{status=\"up\"} 2\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_members{status=\"joining\"} 1\n"));
  CHECK_THAT(text, Catch::Contains("dynkv_requests_total{op=\"get\",role=\"replica\"} 1\n"));
}

TEST_CASE("metrics: /status.json names members, their HTTP ports and each partition's owner") {
  ReportFixture f;
  auto json = statusJson(f.report);
  CHECK(json["reporter"] == "127.0.0.1:7400");
  CHECK(json["partition_count"] == 8);
  REQUIRE(json["members"].size() == 3);
  CHECK(json["members"][1]["address"] == "127.0.0.1:7401");
  CHECK(json["members"][1]["http"] == "127.0.0.1:7481");
  CHECK(json["members"][1]["phi"].is_null());  // infinite: never heard from
  CHECK(json["members"][2]["status"] == "joining");
  CHECK(json["owners"] == nlohmann::json({0, 1, 0, 1, 0, 1, 0, 1}));
  CHECK(json["hints"][0]["owner_address"] == "127.0.0.1:7402");
  CHECK(json["anti_entropy"]["exchanges_finished"] == 7);
  auto& get = json["latency"][size_t(Operation::REPLICA_GET)];
  CHECK(get["op"] == "get");
  CHECK(get["role"] == "replica");
  CHECK(get["p99_ms"] == 1.0);
}

TEST_CASE("metrics: the status page is self-contained") {
  auto& page = statusPageHtml();
  CHECK_THAT(page, Catch::StartsWith("<!DOCTYPE html>"));
  CHECK_THAT(page, Catch::Contains("/status.json"));
  // Nothing is loaded from elsewhere (the SVG namespace is a name, not a fetch).
  CHECK_THAT(page, !Catch::Contains("src=") && !Catch::Contains("<link") &&
                       !Catch::Contains("@import") && !Catch::Contains("https://"));
}

}  // namespace
}  // namespace dynkv::storaged
