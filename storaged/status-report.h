// What a node's HTTP port shows (http-status.h): its metrics as Prometheus families, its view
// of the cluster as JSON, and the status page that draws that JSON.
//
// Pure: each function reads what Admin.nodeStats and Admin.status answer (Service fills both)
// plus the request registry, and returns text; nothing here does I/O or reads a clock.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "metrics.h"
#include "partition-map.h"
#include "dynkv.capnp.h"

namespace dynkv::storaged {

struct NodeReport {
  // Everything one report is made of, as of one moment on the event loop.
  wire::NodeStats::Reader stats;              // what Admin.nodeStats answers
  wire::Admin::StatusResults::Reader status;  // what Admin.status answers
  const PartitionMap* map = nullptr;          // this node's map (owners of every partition)
  const Metrics* metrics = nullptr;
  uint32_t pendingTransfers = 0;              // partitions still streaming in
  uint64_t keys = 0;                          // objects held, tombstones included
};

std::vector<MetricFamily> nodeFamilies(const NodeReport& report);
// Every family /metrics exports: the registry's (requestFamilies) and the node's state —
// hints held by owner, anti-entropy progress, transfers, connections, keys, members by status.

std::string metricsText(const NodeReport& report);
// formatPrometheus(nodeFamilies(report)).

nlohmann::json statusJson(const NodeReport& report);
// /status.json: {node, reporter, map_version, partition_count, members: [{id, address, http,
// status, partitions, phi, suspected, map_version}], owners: [member index per partition],
// latency: [{op, role, count, p50_ms, p99_ms}], anti_entropy: {...}, hints: [{owner_address,
// count}], pending_transfers, keys, tombstones}. Members are in the order `owners` indexes.

const std::string& statusPageHtml();
// The page at /: self-contained (no external resources), it fetches /status.json every two
// seconds and draws members, the ring as an SVG circle coloured by owner, latencies,
// anti-entropy and hints.

}  // namespace dynkv::storaged
