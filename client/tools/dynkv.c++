// The dynkv command-line tool: data commands against a cluster, and `local` to run one on
// this machine.
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <dynkv/client.h>

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
    "                                    the failure detector's opinion\n"
    "  admin join HOST:PORT              add a running node to the ring\n"
    "  admin leave HOST:PORT             hand a node's partitions off and remove it\n"
    "  admin inspect HOST:PORT KEY       what that one node holds for KEY (no quorum)\n"
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
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
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

int admin(const Args& args) {
  dynkv::AdminClient admin(seedsOf(args), args.get("cluster", "dynkv"));
  auto& command = args.positional[0];
  if (command == "status") {
    auto status = admin.status(args.get("node"));
    if (args.has("json")) {
      std::cout << "{\"reporter\": " << jsonString(status.reporter)
                << ", \"map_version\": " << status.mapVersion << ", \"members\": [";
      for (size_t i = 0; i < status.members.size(); i++) {
        auto& m = status.members[i];
        std::cout << (i ? ", " : "") << "{\"address\": " << jsonString(m.address)
                  << ", \"id\": \"" << m.id << "\", \"status\": " << jsonString(m.status)
                  << ", \"partitions\": " << m.partitions
                  << ", \"pending_transfers\": " << m.pendingTransfers
                  << ", \"map_version\": " << m.mapVersion << ", \"phi\": " << m.phi
                  << ", \"suspected\": " << (m.suspected ? "true" : "false") << "}";
      }
      std::cout << "]}" << std::endl;
    } else {
      std::cout << "as seen by " << status.reporter << ", partition map v" << status.mapVersion
                << "\n";
      for (auto& m : status.members) {
        char line[256];
        snprintf(line, sizeof(line),
                 "  %-21s %-8s partitions %4u  pending transfers %4u  map v%-8llu phi %6.2f%s\n",
                 m.address.c_str(), m.status.c_str(), m.partitions, m.pendingTransfers,
                 (unsigned long long)m.mapVersion, m.phi, m.suspected ? "  SUSPECTED" : "");
        std::cout << line;
      }
    }
    return 0;
  }
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
    throw std::invalid_argument("admin takes join|leave HOST:PORT, or inspect HOST:PORT KEY");
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
