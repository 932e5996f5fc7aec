// The dynkv command-line tool: data commands against a cluster, and `local` to run one on
// this machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <dynkv/client.h>
#include <nlohmann/json.hpp>

#include "admin.h"
#include "command-line.h"
#include "exit-codes.h"
#include "hash.h"
#include "json-output.h"
#include "local-cluster.h"

namespace {

using dynkv::cli::ExitCode;
using dynkv::cli::Invocation;
using dynkv::cli::userMessage;

int code(ExitCode c) { return int(c); }

using dynkv::cli::saysRefused;

ExitCode exitCodeOf(const std::string& message) {
  // An admin call's failure, by what the node said: the admin client reports only text.
  if (saysRefused(message) || message.find("refused: ") != std::string::npos) {
    return ExitCode::REFUSED;
  }
  if (message.find("invalid argument") != std::string::npos) return ExitCode::USAGE;
  return ExitCode::UNAVAILABLE;
}

ExitCode exitCodeOf(const dynkv::Error& e) {
  switch (e.kind()) {
    case dynkv::ErrorKind::INVALID_ARGUMENT:
      return ExitCode::USAGE;
    case dynkv::ErrorKind::REJECTED:
      return ExitCode::REFUSED;
    case dynkv::ErrorKind::UNAVAILABLE:
    case dynkv::ErrorKind::TIMEOUT:
      break;
  }
  // Every replica refused the connection (a wrong secret or cluster), or every seed did when
  // asked for the cluster view: retrying won't help.
  bool refused = !e.failedReplicas().empty();
  for (auto& f : e.failedReplicas()) refused = refused && saysRefused(f.reason);
  return refused || saysRefused(e.what()) ? ExitCode::REFUSED : ExitCode::UNAVAILABLE;
}

int local(const Invocation& args) {
  dynkv::LocalClusterOptions options;
  options.dir = args.dir;
  options.nodes = args.nodes;
  options.host = args.host;
  options.basePort = args.basePort;
  // By default each node gets an HTTP port 80 above its RPC port (7480, 7481, ... for the
  // default base port), so `dynkv local up` always has status pages to open.
  uint32_t http = args.httpBasePort ? *args.httpBasePort : uint32_t(args.basePort) + 80;
  options.httpBasePort = http + args.nodes <= 65536 ? uint16_t(http) : 0;
  if (!args.durability.empty()) options.extraArgs = {"--durability", args.durability};
  options.tls = args.tls;
  dynkv::LocalCluster cluster(options);
  if (args.command == "local up") {
    size_t started = 0;
    try {
      started = cluster.up();
    } catch (const dynkv::PortInUse& e) {
      // Nothing was started: say which port, and how to choose others.
      std::cerr << "dynkv: " << e.what() << std::endl;
      return code(ExitCode::UNAVAILABLE);
    }
    std::cerr << "dynkv: " << cluster.size() << " nodes running in " << cluster.dir() << " ("
              << started << " started)" << std::endl;
    std::cout << cluster.seedList() << std::endl;
    if (cluster.tls()) {
      // Paths only: what the client needs to be told, never what the files hold.
      auto client = cluster.tlsFiles("client"), admin = cluster.tlsFiles("admin");
      std::cerr << "dynkv: mutual TLS; as a client:\n  export DYNKV_TLS_CA=" << client.ca
                << " DYNKV_TLS_CERT=" << client.certificate << " DYNKV_TLS_KEY=" << client.key
                << "\ndynkv: for admin commands: DYNKV_TLS_CERT=" << admin.certificate
                << " DYNKV_TLS_KEY=" << admin.key << std::endl;
    }
    return 0;
  }
  cluster.down();
  std::cerr << "dynkv: cluster in " << cluster.dir() << " stopped" << std::endl;
  return 0;
}

// ---- status ----

struct MemberReport {
  // A member's own report of its background state, or why it gave none.
  std::string address;
  std::optional<dynkv::NodeStats> stats;
  std::string unreachable;
};

std::vector<MemberReport> memberReports(dynkv::AdminClient& admin,
                                        const dynkv::ClusterStatus& status,
                                        std::chrono::milliseconds timeout) {
  // Each member asked over its own address; one that does not answer is shown as such.
  std::vector<MemberReport> out;
  for (auto& m : status.members) {
    if (m.status == "removed") continue;
    MemberReport report{m.address, std::nullopt, ""};
    try {
      report.stats = admin.nodeStats(m.address, timeout);
    } catch (const std::exception& e) {
      report.unreachable = e.what();
      auto prefix = m.address + ": ";  // the address is said once, in the row
      if (report.unreachable.rfind(prefix, 0) == 0) {
        report.unreachable = report.unreachable.substr(prefix.size());
      }
    }
    out.push_back(std::move(report));
  }
  return out;
}

std::string humanBytes(uint64_t bytes) {
  char buf[32];
  if (bytes >= (1u << 20)) {
    snprintf(buf, sizeof(buf), "%.1f MiB", double(bytes) / double(1u << 20));
  } else {
    snprintf(buf, sizeof(buf), "%.1f KiB", double(bytes) / 1024.0);
  }
  return buf;
}

std::string age(int64_t millis) {
  if (millis < 0) return "never";
  char buf[32];
  snprintf(buf, sizeof(buf), "%.1f s ago", double(millis) / 1000.0);
  return buf;
}

nlohmann::ordered_json statsJson(const dynkv::NodeStats& s) {
  auto& ae = s.antiEntropy;
  auto hints = nlohmann::ordered_json::array();
  for (auto& h : s.hints) {
    hints.push_back({{"owner", std::to_string(h.owner)},
                     {"owner_address", h.ownerAddress},
                     {"count", h.count}});
  }
  auto sentByCall = nlohmann::ordered_json::object();
  auto receivedByCall = nlohmann::ordered_json::object();
  for (auto& [call, bytes] : ae.byCall) {
    sentByCall[call] = bytes.sent;
    receivedByCall[call] = bytes.received;
  }
  return {{"id", std::to_string(s.id)},
          {"epoch", std::to_string(s.epoch)},
          {"rebuilding", s.rebuilding},
          {"hints", hints},
          {"anti_entropy",
           {{"last_complete_age_ms", ae.lastCompleteAgeMillis},
            {"exchanges_finished", ae.exchangesFinished},
            {"exchanges_failed", ae.exchangesFailed},
            {"segments_differing", ae.segmentsDiffering},
            {"keys_repaired", ae.keysRepaired},
            {"bytes_sent", ae.bytesSent},
            {"bytes_received", ae.bytesReceived},
            {"bytes_sent_by_call", sentByCall},
            {"bytes_received_by_call", receivedByCall},
            {"trees_digest", std::to_string(ae.treesDigest)},
            {"partitions_held", ae.partitionsHeld},
            {"tree_memory_bytes", ae.treeMemoryBytes},
            {"running", ae.running}}},
          {"tombstones", s.tombstones},
          {"tombstones_reaped", s.tombstonesReaped},
          {"partitions_dropped", s.partitionsDropped},
          {"admission",
           {{"enabled", s.admissionEnabled},
            {"slots", s.admissionSlots},
            {"foreground_p99_us", s.foregroundP99Micros}}}};
}

int status(const Invocation& args, dynkv::AdminClient& admin) {
  auto status = admin.status(args.node);
  if (!args.all) {
    // Removed members stay in every node's state (so gossip never brings them back), but they
    // are history, not members: shown with --all only.
    auto& members = status.members;
    members.erase(std::remove_if(members.begin(), members.end(),
                                 [](auto& m) { return m.status == "removed"; }),
                  members.end());
  }
  auto reports = memberReports(admin, status, std::chrono::milliseconds(args.timeoutMillis));
  auto reportOf = [&](const std::string& address) -> const MemberReport* {
    for (auto& r : reports) {
      if (r.address == address) return &r;
    }
    return nullptr;
  };
  if (args.json) {
    // phi is infinite for a node never heard from: nlohmann prints it as null.
    auto members = nlohmann::ordered_json::array();
    for (auto& m : status.members) {
      nlohmann::ordered_json member = {{"address", m.address},
                                       {"id", std::to_string(m.id)},
                                       {"http", m.http},
                                       {"status", m.status},
                                       {"partitions", m.partitions},
                                       {"pending_transfers", m.pendingTransfers},
                                       {"handoff_partitions", m.handoffPartitions},
                                       {"handoff_everywhere", m.handoffEverywhere},
                                       {"map_version", m.mapVersion},
                                       {"phi", m.phi},
                                       {"suspected", m.suspected}};
      if (auto r = reportOf(m.address)) {
        if (r->stats) {
          member["stats"] = statsJson(*r->stats);
        } else {
          member["unreachable"] = r->unreachable;
        }
      }
      members.push_back(std::move(member));
    }
    nlohmann::ordered_json out = {
        {"reporter", status.reporter}, {"map_version", status.mapVersion}, {"members", members}};
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return 0;
  }
  std::cout << "as seen by " << status.reporter << ", partition map v" << status.mapVersion << "\n";
  for (auto& m : status.members) {
    char line[256];
    // "handoff": partitions it holds writes of still to hand off (hints, data of partitions it
    // is no replica of); their tombstones wait until those writes are out.
    auto handoff = m.handoffEverywhere ? std::string("all") : std::to_string(m.handoffPartitions);
    snprintf(line, sizeof(line),
             "  %-21s %-8s partitions %4u  pending transfers %4u  handoff %4s  map v%-8llu "
             "phi %6.2f%s\n",
             m.address.c_str(), m.status.c_str(), m.partitions, m.pendingTransfers,
             handoff.c_str(), (unsigned long long)m.mapVersion, m.phi,
             m.suspected ? "  SUSPECTED" : "");
    std::cout << line;
    if (!m.http.empty()) std::cout << "    http://" << m.http << "/\n";
  }
  std::cout << "\neach member's own report (anti-entropy since its start)\n";
  char header[256];
  snprintf(header, sizeof(header), "  %-21s %-13s %9s %7s %10s %9s %11s %12s %-10s %s\n", "node",
           "last exchange", "exchanges", "failed", "differing", "repaired", "tombstones",
           "tree memory", "rebuilding", "hints held");
  std::cout << header;
  for (auto& r : reports) {
    if (!r.stats) {
      std::cout << "  " << r.address << "  unreachable: " << r.unreachable << "\n";
      continue;
    }
    auto& s = *r.stats;
    auto& ae = s.antiEntropy;
    char line[320];
    snprintf(line, sizeof(line), "  %-21s %-13s %9llu %7llu %10llu %9llu %11llu %12s %-10s %llu\n",
             r.address.c_str(), age(ae.lastCompleteAgeMillis).c_str(),
             (unsigned long long)ae.exchangesFinished, (unsigned long long)ae.exchangesFailed,
             (unsigned long long)ae.segmentsDiffering, (unsigned long long)ae.keysRepaired,
             (unsigned long long)s.tombstones, humanBytes(ae.treeMemoryBytes).c_str(),
             s.rebuilding ? "yes" : "no", (unsigned long long)s.hintsHeld());
    std::cout << line;
  }
  for (auto& r : reports) {
    if (!r.stats) continue;
    for (auto& h : r.stats->hints) {
      std::cout << "  " << r.address << " holds " << h.count << " hint" << (h.count == 1 ? "" : "s")
                << " for "
                << (h.ownerAddress.empty() ? "node " + std::to_string(h.owner) + " (not in the map)"
                                           : h.ownerAddress)
                << "\n";
    }
  }
  std::cout << std::flush;
  return 0;
}

// ---- admin repair ----

std::string reportLine(const dynkv::RepairReport& r) {
  // The node counts a partition once per peer it compares it with.
  return std::to_string(r.exchanges) + " exchange" + (r.exchanges == 1 ? "" : "s") + " (" +
         std::to_string(r.failed) + " failed), " + std::to_string(r.partitions) +
         " partition tree" + (r.partitions == 1 ? "" : "s") + " compared, " +
         std::to_string(r.segmentsDiffering) + " segments differing, " +
         std::to_string(r.keysRepaired) + " keys repaired";
}

int repair(const Invocation& args, dynkv::AdminClient& admin) {
  auto partition = args.partition;
  std::vector<std::string> nodes;
  if (!args.node.empty()) {
    nodes.push_back(args.node);
  } else {
    for (auto& m : admin.status().members) {
      if (m.status != "removed") nodes.push_back(m.address);
    }
  }
  bool json = args.json;
  auto results = nlohmann::ordered_json::array();
  int exitCode = 0;
  for (auto& node : nodes) {
    std::cerr << "repairing " << node << ": "
              << (partition ? "partition " + std::to_string(*partition) : "every partition")
              << std::endl;
    auto started = std::chrono::steady_clock::now();
    auto seconds = [&]() {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    };
    dynkv::RepairReport report;
    try {
      // The counters are since the node's start: progress is what this repair added.
      auto before = admin.nodeStats(node).antiEntropy;
      report = admin.repair(node, partition, [&](const dynkv::NodeStats& now) {
        char line[160];
        snprintf(line, sizeof(line), "  %s  %5.1f s  exchanges finished %llu, keys repaired %llu\n",
                 node.c_str(), seconds(),
                 (unsigned long long)(now.antiEntropy.exchangesFinished - before.exchangesFinished),
                 (unsigned long long)(now.antiEntropy.keysRepaired - before.keysRepaired));
        std::cerr << line << std::flush;
      });
    } catch (const std::runtime_error& e) {
      std::string what = e.what();
      if (what.find("invalid argument") != std::string::npos) {
        // The same partition is out of range on every node: no use asking the others.
        std::cerr << "dynkv: " << what << std::endl;
        return code(ExitCode::USAGE);
      }
      // The node's address is said once, before its reason.
      if (what.rfind(node + ": ", 0) == 0) what = what.substr(node.size() + 2);
      what = node + ": " + userMessage(what);
      std::cerr << "dynkv: repair on " << what << std::endl;
      if (json) results.push_back({{"node", node}, {"error", what}});
      exitCode = code(exitCodeOf(what));
      continue;
    }
    if (report.failed > 0) exitCode = code(ExitCode::UNAVAILABLE);
    if (json) {
      results.push_back({{"node", node},
                         {"exchanges", report.exchanges},
                         {"failed", report.failed},
                         {"partitions", report.partitions},
                         {"segments_differing", report.segmentsDiffering},
                         {"keys_repaired", report.keysRepaired},
                         {"message", report.message},
                         {"seconds", seconds()}});
      continue;
    }
    char took[32];
    snprintf(took, sizeof(took), ", %.1f s", seconds());
    std::cout << node << ": " << reportLine(report) << took << "\n";
    if (!report.message.empty()) std::cout << "  failures: " << report.message << "\n";
    std::cout << std::flush;
  }
  if (json) {
    std::cout << results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
              << std::endl;
  }
  return exitCode;
}

int snapshot(const Invocation& args, dynkv::AdminClient& admin) {
  auto started = std::chrono::steady_clock::now();
  auto report =
      admin.snapshot(args.node, args.snapshotDir, std::chrono::milliseconds(args.timeoutMillis));
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (args.json) {
    std::cout << dynkv::cli::spacedDump({{"ok", true},
                                         {"node", args.node},
                                         {"dir", args.snapshotDir},
                                         {"bytes", report.bytes},
                                         {"keys", report.keys},
                                         {"seconds", seconds}})
              << std::endl;
  } else {
    char took[32];
    snprintf(took, sizeof(took), "%.1f s", seconds);
    std::cout << "ok: snapshot of " << args.node << " in " << args.snapshotDir << " on its host: "
              << report.bytes << " bytes, " << report.keys << " keys, " << took << std::endl;
  }
  return 0;
}

// ---- where ----

int where(const Invocation& args, dynkv::AdminClient& admin) {
  // The map the first seed that answers routes by: the SDK would compute the same list.
  std::optional<dynkv::PartitionMap> map;
  std::string problems;
  for (auto& seed : args.seeds) {
    try {
      map = admin.map(seed);
      break;
    } catch (const std::exception& e) {
      problems += (problems.empty() ? "" : "; ") + std::string(e.what());
    }
  }
  if (!map) throw std::runtime_error("no seed answered: " + problems);
  uint32_t n = args.n.value_or(3);
  uint32_t partition = map->partitionOf(dynkv::keyHash(args.ns, args.key));
  auto list = map->preferenceList(partition, n, n);
  bool anyPrimaryAnswered = false;
  auto nodes = nlohmann::ordered_json::array();
  if (!args.json) {
    std::cout << "key " << args.key << (args.ns.empty() ? "" : " in namespace " + args.ns)
              << ": partition " << partition << " of " << map->partitionCount() << " (map v"
              << map->version() << ")\n";
  }
  for (size_t i = 0; i < list.nodes.size(); i++) {
    auto& node = map->nodes()[list.nodes[i]];
    bool primary = i < list.primaries;
    std::string role = primary ? "replica " + std::to_string(i + 1) : "fallback";
    nlohmann::ordered_json entry = {{"address", node.address}, {"role", role}};
    std::string line;
    try {
      auto copy = admin.localCopy(node.address, args.key, args.ns);
      anyPrimaryAnswered |= primary;
      if (!copy) {
        entry["found"] = false;
        line = "(nothing)";
      } else {
        entry["found"] = true;
        entry["siblings"] = copy->values.size() + copy->tombstones;
        entry["tombstones"] = copy->tombstones;
        entry["tombstone"] = copy->values.empty();
        entry["version_vector"] = copy->versionVector;
        entry["digest"] = copy->digest;
        line = std::to_string(copy->values.size() + copy->tombstones) + " sibling" +
               (copy->values.size() + copy->tombstones == 1 ? "" : "s") +
               (copy->values.empty() ? " (tombstone)"
                : copy->tombstones ? " (" + std::to_string(copy->tombstones) + " tombstone" +
                                         (copy->tombstones == 1 ? ")" : "s)")
                                   : "") +
               "  vv [" + copy->versionVector + "]  digest " + copy->digest;
      }
    } catch (const std::exception& e) {
      std::string what = e.what();
      if (what.rfind(node.address + ": ", 0) == 0) what = what.substr(node.address.size() + 2);
      entry["error"] = userMessage(what);
      line = "no answer: " + userMessage(what);
    }
    if (args.json) {
      nodes.push_back(entry);
    } else {
      char head[96];
      snprintf(head, sizeof(head), "  %-11s %-22s ", role.c_str(), node.address.c_str());
      std::cout << head << line << "\n";
    }
  }
  if (args.json) {
    nlohmann::ordered_json out = {{"key", args.key},
                                  {"namespace", args.ns},
                                  {"partition", partition},
                                  {"partitions", map->partitionCount()},
                                  {"map_version", map->version()},
                                  {"n", n},
                                  {"nodes", nodes}};
    std::cout << dynkv::cli::spacedDump(out) << std::endl;
  } else {
    std::cout << std::flush;
  }
  return code(anyPrimaryAnswered ? ExitCode::OK : ExitCode::UNAVAILABLE);
}

std::string siblingsText(const dynkv::LocalCopy& copy) {
  size_t siblings = copy.values.size() + copy.tombstones;
  return std::to_string(siblings) + " sibling" + (siblings == 1 ? "" : "s") +
         (copy.values.empty()  ? " (tombstone)"
          : copy.tombstones ? " (" + std::to_string(copy.tombstones) + " tombstone" +
                                  (copy.tombstones == 1 ? ")" : "s)")
                            : "");
}

int inspect(const Invocation& args, dynkv::AdminClient& admin) {
  // Each copy apart, with why the node holds it: a replica's own, a stand-in's hint for a
  // replica that was unreachable (to hand over when it is back), or a former owner's.
  auto report = admin.inspect(args.address, args.key, args.ns, args.n.value_or(3));
  auto roleOf = [](const dynkv::HeldCopy& held) -> std::string {
    switch (held.role) {
      case dynkv::HeldCopy::Role::REPLICA:
        return "replica";
      case dynkv::HeldCopy::Role::STAND_IN:
        return "stand-in";
      case dynkv::HeldCopy::Role::HAND_OFF:
        return "hand-off";
    }
    return "replica";
  };
  auto forWhom = [](const dynkv::HeldCopy& held) {
    if (!held.ownerAddress.empty()) return held.ownerAddress;
    char id[32];
    snprintf(id, sizeof(id), "node %llx", (unsigned long long)held.owner);
    return std::string(id) + " (no longer in the ring)";
  };
  if (args.json) {
    nlohmann::ordered_json out = {{"node", args.address},
                                  {"key", args.key},
                                  {"partition", report.partition},
                                  {"replica", report.replica},
                                  {"found", report.merged.has_value()}};
    // "values": what a read of this node answers, every copy merged.
    dynkv::cli::putValues(out, "values",
                          report.merged ? report.merged->values : std::vector<std::string>{});
    auto copies = nlohmann::ordered_json::array();
    for (auto& held : report.copies) {
      nlohmann::ordered_json copy = {{"role", roleOf(held)}};
      if (held.role == dynkv::HeldCopy::Role::STAND_IN) copy["for"] = forWhom(held);
      copy["siblings"] = held.copy.values.size() + held.copy.tombstones;
      copy["tombstones"] = held.copy.tombstones;
      dynkv::cli::putValues(copy, "values", held.copy.values);
      copy["version_vector"] = held.copy.versionVector;
      copy["digest"] = held.copy.digest;
      copies.push_back(copy);
    }
    out["copies"] = copies;
    std::cout << dynkv::cli::spacedDump(out) << std::endl;
  } else {
    std::cout << "partition " << report.partition << ": " << args.address
              << (report.replica ? " is on the key's preference list"
                                 : " is not on the key's preference list")
              << "\n";
    if (report.copies.empty()) std::cout << "(nothing)\n";
    for (auto& held : report.copies) {
      std::string head =
          held.role == dynkv::HeldCopy::Role::REPLICA    ? "replica copy"
          : held.role == dynkv::HeldCopy::Role::STAND_IN ? "stand-in copy for " + forWhom(held) +
                                                               " (hinted handoff)"
                                                         : "hand-off copy (a former owner's)";
      std::cout << head << ": " << siblingsText(held.copy) << "  vv [" << held.copy.versionVector
                << "]  digest " << held.copy.digest << "\n";
      for (auto& v : held.copy.values) std::cout << "  " << v << "\n";
    }
    std::cout << std::flush;
  }
  return code(report.merged ? ExitCode::OK : ExitCode::NOT_FOUND);
}

void leaveAdvice(dynkv::AdminClient& admin, const std::string& address) {
  // A leaving node hands its partitions off itself: one that is down stays leaving until it
  // comes back. Say so when the cluster suspects it, and what takes a dead node out.
  try {
    for (auto& m : admin.status().members) {
      if (m.address != address || !m.suspected) continue;
      std::cerr << "dynkv: note: " << address << " looks down (suspected by the node asked); a "
                << "leaving node hands its partitions off itself, so it stays leaving until it "
                << "is back. If it is gone for good: dynkv admin remove --force " << address
                << std::endl;
    }
  } catch (const std::exception&) {
    // Advice only: the leave itself has been accepted.
  }
}

dynkv::TlsFiles tlsFilesOf(const Invocation& args) {
  return {args.tlsCa, args.tlsCert, args.tlsKey};
}

int certs(const Invocation& args) {
  dynkv::writeCertificates(args.certsDir, args.certNodes, args.certClient, args.certAdmin,
                           args.certDays);
  std::cout << "ok: certificates in " << args.certsDir << " (keys readable by you only)"
            << std::endl;
  return 0;
}

int admin(const Invocation& args) {
  if (args.command == "admin certs") return certs(args);
  dynkv::AdminClient admin(args.seeds, args.cluster, args.secret, tlsFilesOf(args));
  if (args.command == "status") return status(args, admin);
  if (args.command == "admin repair") return repair(args, admin);
  if (args.command == "admin inspect") return inspect(args, admin);
  if (args.command == "admin snapshot") return snapshot(args, admin);
  if (args.command == "where") return where(args, admin);
  auto verb = args.command.substr(std::string("admin ").size());
  if (verb == "join") {
    admin.joinWhenKnown(args.address, std::chrono::milliseconds(args.timeoutMillis),
                        [](const std::string& waitingFor) {
                          std::cerr << "dynkv: waiting: " << userMessage(waitingFor)
                                    << std::endl;
                        });
  } else if (verb == "remove") {
    admin.forceRemove(args.address, args.evenIfAlive);
  } else {
    admin.leave(args.address);
    leaveAdvice(admin, args.address);
  }
  if (args.json) {
    std::cout << dynkv::cli::spacedDump({{"ok", true}, {verb, args.address}}) << std::endl;
  } else {
    std::cout << "ok: " << verb << " " << args.address << std::endl;
  }
  return 0;
}

int data(const Invocation& args) {
  dynkv::ClientOptions options;
  options.seeds = args.seeds;
  options.cluster = args.cluster;
  options.secret = args.secret;
  options.tlsCa = args.tlsCa;
  options.tlsCert = args.tlsCert;
  options.tlsKey = args.tlsKey;
  if (args.lww) options.namespaces[args.ns] = dynkv::NamespaceKind::LAST_WRITE_WINS;

  dynkv::CallOptions call;
  if (args.n) call.n = *args.n;
  if (args.r) call.r = *args.r;
  if (args.w) call.w = *args.w;
  if (args.timeoutGiven) call.timeout = std::chrono::milliseconds(args.timeoutMillis);

  dynkv::Client client(options);
  auto& command = args.command;
  if (command == "ring") {
    auto ring = client.ring();
    if (args.json) {
      auto nodes = nlohmann::ordered_json::array();
      for (auto& n : ring.nodes) {
        nodes.push_back({{"id", std::to_string(n.id)},
                         {"address", n.address},
                         {"zone", n.zone},
                         {"weight", n.weight},
                         {"partitions", n.partitions},
                         {"share", n.share}});
      }
      nlohmann::ordered_json out = {
          {"version", ring.version}, {"partitions", ring.partitions}, {"nodes", nodes}};
      std::cout << dynkv::cli::spacedDump(out) << std::endl;
    } else {
      std::cout << "partition map v" << ring.version << ", " << ring.partitions
                << " partitions\n";
      for (auto& n : ring.nodes) {
        char share[32];
        snprintf(share, sizeof(share), "%5.1f%%", n.share * 100);
        std::cout << "  " << n.address << "  partitions " << n.partitions << "  share " << share
                  << "  weight " << n.weight << (n.zone.empty() ? "" : "  zone " + n.zone)
                  << "  id " << n.id << "\n";
      }
    }
    return 0;
  }

  dynkv::Key key(args.ns, args.key);
  if (command == "get") {
    auto result = client.get(key, call);
    if (args.json) {
      nlohmann::ordered_json out;
      dynkv::cli::putValues(out, "siblings", result.values());
      out["found"] = result.found();
      out["deleted"] = result.siblings.size() - result.values().size();
      out["context"] = result.context.token();
      std::cout << dynkv::cli::spacedDump(out) << std::endl;
    } else {
      for (auto& v : result.values()) std::cout << v << "\n";
      std::cout << "context: " << result.context.token() << std::endl;
    }
    return code(result.found() ? ExitCode::OK : ExitCode::NOT_FOUND);
  }

  auto context = dynkv::Context::fromToken(args.context);
  dynkv::Context written;
  if (command == "put") {
    std::string value = args.value;
    if (value == "-") {
      value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    written = client.put(key, value, context, call);
  } else {
    written = client.remove(key, context, call);
  }
  if (args.json) {
    std::cout << dynkv::cli::spacedDump({{"ok", true}, {"context", written.token()}})
              << std::endl;
  } else {
    std::cout << "ok\ncontext: " << written.token() << std::endl;
  }
  return 0;
}

std::optional<std::string> environmentVariable(const std::string& name) {
  const char* value = getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

int run(const Invocation& args) {
  if (args.command.rfind("local ", 0) == 0) return local(args);
  if (args.command == "status" || args.command == "where" || args.command.rfind("admin ", 0) == 0) {
    return admin(args);
  }
  return data(args);
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = dynkv::cli::parseCommandLine(argc, argv, environmentVariable);
  if (auto exit = std::get_if<dynkv::cli::Exit>(&parsed)) {
    (exit->code == 0 ? std::cout : std::cerr) << exit->text << std::flush;
    return exit->code;
  }
  auto& args = std::get<Invocation>(parsed);
  try {
    return run(args);
  } catch (const dynkv::Error& e) {
    std::cerr << "dynkv: " << userMessage(e.what()) << std::endl;
    return code(exitCodeOf(e));
  } catch (const std::exception& e) {
    auto message = userMessage(e.what());
    std::cerr << "dynkv: " << message << std::endl;
    return code(exitCodeOf(message));
  }
}
