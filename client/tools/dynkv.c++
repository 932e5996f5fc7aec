// The dynkv command-line tool: data commands against a cluster, and `local` to run one on
// this machine.
#include <chrono>
#include <climits>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <dynkv/client.h>
#include <nlohmann/json.hpp>

#include "admin.h"
#include "local-cluster.h"

namespace {

const char USAGE[] =
    "usage: dynkv [options] COMMAND\n"
    "\n"
    "commands:\n"
    "  put KEY VALUE [--context TOKEN]   write VALUE (\"-\" reads standard input)\n"
    "  get KEY                           print each sibling on a line, then the context\n"
    "  del KEY [--context TOKEN]         write a deletion\n"
    "  ring                              print the partition map: nodes and their shares\n"
    "  status                            members, their state, shares, pending transfers and\n"
    "                                    the failure detector's opinion; then each member's own\n"
    "                                    report: anti-entropy (last exchange, exchanges, "
    "differing\n"
    "                                    segments, keys repaired), tombstones, tree memory,\n"
    "                                    rebuilding, hints held per owner\n"
    "  admin join HOST:PORT              add a running node to the ring\n"
    "  admin leave HOST:PORT             hand a node's partitions off and remove it\n"
    "  admin inspect HOST:PORT KEY       what that one node holds for KEY (no quorum)\n"
    "  admin repair [--partition P] [--node HOST:PORT]\n"
    "                                    run anti-entropy now on that node (default: on every\n"
    "                                    member in turn), for partition P (default: all), with\n"
    "                                    progress every 0.5 s and the report at the end\n"
    "  local up --nodes N --dir DIR [--base-port P] [--durability sync|buffered]\n"
    "                                    start (or restart) a cluster on loopback\n"
    "  local down --dir DIR              stop it\n"
    "\n"
    "options:\n"
    "  --seeds HOST:PORT,...   nodes to contact (default $DYNKV_SEEDS or 127.0.0.1:7400)\n"
    "  --cluster NAME          cluster name (default dynkv)\n"
    "  --ns NAMESPACE          namespace of KEY (default: the default namespace)\n"
    "  --lww                   the namespace is last-write-wins\n"
    "  --n N --r R --w W       quorum for this call (default 3/2/2)\n"
    "  --timeout MS            deadline for this call (default 2000)\n"
    "  --json                  machine-readable output\n";

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::string> flags;
  bool has(const std::string& f) const { return flags.count(f) != 0; }
  std::string get(const std::string& f, const std::string& fallback = "") const {
    auto it = flags.find(f);
    return it == flags.end() ? fallback : it->second;
  }
};

Args parse(int argc, char** argv) {
  static const char* BOOLEAN[] = {"json", "lww", "help"};
  Args args;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.size() > 2 && a.rfind("--", 0) == 0) {
      auto name = a.substr(2);
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        args.flags[name.substr(0, eq)] = name.substr(eq + 1);
        continue;
      }
      bool boolean = false;
      for (auto b : BOOLEAN) boolean |= name == b;
      if (boolean) {
        args.flags[name] = "1";
      } else if (i + 1 < argc) {
        args.flags[name] = argv[++i];
      } else {
        throw std::invalid_argument("--" + name + " needs a value");
      }
    } else {
      args.positional.push_back(a);
    }
  }
  return args;
}

uint32_t number(const Args& args, const std::string& flag, uint32_t fallback) {
  if (!args.has(flag)) return fallback;
  try {
    return uint32_t(std::stoul(args.get(flag)));
  } catch (const std::exception&) {
    throw std::invalid_argument("--" + flag + " needs a number, got '" + args.get(flag) + "'");
  }
}

std::vector<std::string> splitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string jsonString(const std::string& s) {
  // Bytes that are not UTF-8 become U+FFFD: a value may be any bytes, JSON text may not.
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int local(const Args& args) {
  if (args.positional.size() < 2) throw std::invalid_argument("local needs up or down");
  dynkv::LocalClusterOptions options;
  options.dir = args.get("dir");
  options.nodes = number(args, "nodes", 3);
  options.basePort = uint16_t(number(args, "base-port", 7400));
  if (args.has("durability")) options.extraArgs = {"--durability", args.get("durability")};
  dynkv::LocalCluster cluster(options);
  auto& verb = args.positional[1];
  if (verb == "up") {
    size_t started = cluster.up();
    std::cerr << "dynkv: " << cluster.size() << " nodes running in " << cluster.dir() << " ("
              << started << " started)" << std::endl;
    std::cout << cluster.seedList() << std::endl;
    return 0;
  }
  if (verb == "down") {
    cluster.down();
    std::cerr << "dynkv: cluster in " << cluster.dir() << " stopped" << std::endl;
    return 0;
  }
  throw std::invalid_argument("local needs up or down, got '" + verb + "'");
}

std::vector<std::string> seedsOf(const Args& args) {
  const char* envSeeds = getenv("DYNKV_SEEDS");
  return splitCommas(args.get("seeds", envSeeds ? envSeeds : "127.0.0.1:7400"));
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

int status(const Args& args, dynkv::AdminClient& admin) {
  auto status = admin.status(args.get("node"));
  auto reports =
      memberReports(admin, status, std::chrono::milliseconds(number(args, "timeout", 2000)));
  auto reportOf = [&](const std::string& address) -> const MemberReport* {
    for (auto& r : reports) {
      if (r.address == address) return &r;
    }
    return nullptr;
  };
  if (args.has("json")) {
    auto members = nlohmann::ordered_json::array();
    for (auto& m : status.members) {
      nlohmann::ordered_json member = {{"address", m.address},
                                       {"id", std::to_string(m.id)},
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

std::optional<uint32_t> partitionOf(const Args& args) {
  if (!args.has("partition")) return std::nullopt;
  auto text = args.get("partition");
  try {
    size_t used = 0;
    long long p = std::stoll(text, &used);
    if (used == text.size() && p >= 0 && p <= INT32_MAX) return uint32_t(p);
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("--partition needs a partition number (0 or more), got '" + text +
                              "'");
}

std::string reportLine(const dynkv::RepairReport& r) {
  // The node counts a partition once per peer it compares it with.
  return std::to_string(r.exchanges) + " exchange" + (r.exchanges == 1 ? "" : "s") + " (" +
         std::to_string(r.failed) + " failed), " + std::to_string(r.partitions) +
         " partition tree" + (r.partitions == 1 ? "" : "s") + " compared, " +
         std::to_string(r.segmentsDiffering) + " segments differing, " +
         std::to_string(r.keysRepaired) + " keys repaired";
}

int repair(const Args& args, dynkv::AdminClient& admin) {
  auto partition = partitionOf(args);
  std::vector<std::string> nodes;
  if (args.has("node")) {
    nodes.push_back(args.get("node"));
  } else {
    for (auto& m : admin.status().members) {
      if (m.status != "removed") nodes.push_back(m.address);
    }
  }
  bool json = args.has("json");
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
        return 2;
      }
      std::cerr << "dynkv: repair on " << what << std::endl;
      if (json) results.push_back({{"node", node}, {"error", what}});
      exitCode = 1;
      continue;
    }
    if (report.failed > 0) exitCode = 1;
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

int admin(const Args& args) {
  dynkv::AdminClient admin(seedsOf(args), args.get("cluster", "dynkv"));
  auto& command = args.positional[0];
  if (command == "status") return status(args, admin);
  if (args.positional.size() == 2 && args.positional[1] == "repair") return repair(args, admin);
  if (args.positional.size() == 4 && args.positional[1] == "inspect") {
    auto values = admin.localValues(args.positional[2], args.positional[3], args.get("ns"));
    if (!values) {
      std::cout << "(nothing)" << std::endl;
      return 1;
    }
    for (auto& v : *values) std::cout << v << "\n";
    std::cout << std::flush;
    return 0;
  }
  if (args.positional.size() != 3) {
    throw std::invalid_argument(
        "admin takes join|leave HOST:PORT, inspect HOST:PORT KEY, or repair");
  }
  auto& verb = args.positional[1];
  auto& address = args.positional[2];
  if (verb == "join") {
    admin.join(address);
  } else if (verb == "leave") {
    admin.leave(address);
  } else {
    throw std::invalid_argument("admin takes join|leave, got '" + verb + "'");
  }
  std::cout << "ok: " << verb << " " << address << std::endl;
  return 0;
}

int data(const Args& args) {
  dynkv::ClientOptions options;
  options.seeds = seedsOf(args);
  options.cluster = args.get("cluster", "dynkv");
  std::string ns = args.get("ns");
  if (args.has("lww")) options.namespaces[ns] = dynkv::NamespaceKind::LAST_WRITE_WINS;

  dynkv::CallOptions call;
  if (args.has("n")) call.n = number(args, "n", 3);
  if (args.has("r")) call.r = number(args, "r", 2);
  if (args.has("w")) call.w = number(args, "w", 2);
  if (args.has("timeout")) call.timeout = std::chrono::milliseconds(number(args, "timeout", 2000));
  bool json = args.has("json");

  dynkv::Client client(options);
  auto& command = args.positional[0];
  auto need = [&](size_t n) {
    if (args.positional.size() != n) {
      throw std::invalid_argument(command + " takes " + std::to_string(n - 1) + " argument(s)");
    }
  };

  if (command == "ring") {
    auto ring = client.ring();
    if (json) {
      std::cout << "{\"version\": " << ring.version << ", \"partitions\": " << ring.partitions
                << ", \"nodes\": [";
      for (size_t i = 0; i < ring.nodes.size(); i++) {
        auto& n = ring.nodes[i];
        std::cout << (i ? ", " : "") << "{\"id\": \"" << n.id << "\", \"address\": "
                  << jsonString(n.address) << ", \"zone\": " << jsonString(n.zone)
                  << ", \"weight\": " << n.weight << ", \"partitions\": " << n.partitions
                  << ", \"share\": " << n.share << "}";
      }
      std::cout << "]}" << std::endl;
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

  if (command == "get") {
    need(2);
    auto result = client.get(dynkv::Key(ns, args.positional[1]), call);
    if (json) {
      std::cout << "{\"siblings\": [";
      bool first = true;
      for (auto& v : result.siblings) {
        if (v.deleted) continue;
        std::cout << (first ? "" : ", ") << jsonString(v.value);
        first = false;
      }
      std::cout << "], \"deleted\": " << (result.siblings.size() - result.values().size())
                << ", \"context\": " << jsonString(result.context.token()) << "}" << std::endl;
    } else {
      for (auto& v : result.values()) std::cout << v << "\n";
      std::cout << "context: " << result.context.token() << std::endl;
    }
    return result.found() ? 0 : 1;
  }

  if (command == "put" || command == "del") {
    need(command == "put" ? 3 : 2);
    auto context = dynkv::Context::fromToken(args.get("context"));
    dynkv::Key key(ns, args.positional[1]);
    dynkv::Context written;
    if (command == "put") {
      std::string value = args.positional[2];
      if (value == "-") {
        value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      }
      written = client.put(key, value, context, call);
    } else {
      written = client.remove(key, context, call);
    }
    if (json) {
      std::cout << "{\"ok\": true, \"context\": " << jsonString(written.token()) << "}"
                << std::endl;
    } else {
      std::cout << "ok\ncontext: " << written.token() << std::endl;
    }
    return 0;
  }
  throw std::invalid_argument("unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto args = parse(argc, argv);
    if (args.has("help") || args.positional.empty()) {
      std::cout << USAGE;
      return args.has("help") ? 0 : 2;
    }
    if (args.positional[0] == "local") return local(args);
    if (args.positional[0] == "admin" || args.positional[0] == "status") return admin(args);
    return data(args);
  } catch (const dynkv::Error& e) {
    std::cerr << "dynkv: " << e.what() << std::endl;
    return e.kind() == dynkv::ErrorKind::INVALID_ARGUMENT ? 2 : 3;
  } catch (const std::invalid_argument& e) {
    std::cerr << "dynkv: " << e.what() << "\n" << USAGE;
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "dynkv: " << e.what() << std::endl;
    return 1;
  }
}
