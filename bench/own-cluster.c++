#include "own-cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

namespace dynkv::bench {

namespace {

bool portsFree(uint16_t base, uint32_t count) {
  // Every port of [base, base + count) bindable on loopback now (without SO_REUSEADDR, so a
  // port in TIME_WAIT counts as taken).
  std::vector<int> held;
  bool free = true;
  for (uint32_t i = 0; i < count && free; i++) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    held.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(base + i));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  for (int fd : held) close(fd);
  return free;
}

uint16_t pickBasePort(uint32_t count) {
  // Below the kernel's ephemeral range, which outgoing connections draw from.
  uint32_t low = 20000, high = 60000;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  uint32_t ephemeralLow = 0, ephemeralHigh = 0;
  if (range >> ephemeralLow >> ephemeralHigh && ephemeralLow > low + 1000) {
    high = std::min(high, ephemeralLow);
  }
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<uint32_t> pick(low, high - count);
  for (int attempt = 0; attempt < 200; attempt++) {
    auto base = uint16_t(pick(rng));
    if (portsFree(base, count)) return base;
  }
  throw std::runtime_error("no free range of " + std::to_string(count) + " loopback ports");
}

}  // namespace

OwnCluster::OwnCluster(uint32_t nodes, std::vector<std::string> extraArgs, bool keep,
                       bool tls)
    : keep_(keep) {
  char dir[] = "/tmp/dynkv-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) throw std::runtime_error("cannot create a temporary directory");
  dir_ = dir;
  LocalClusterOptions options;
  options.dir = dir_;
  options.nodes = nodes;
  options.basePort = pickBasePort(nodes);
  options.extraArgs = std::move(extraArgs);
  options.tls = tls;
  cluster_.emplace(options);
  cluster_->up();
}

OwnCluster::~OwnCluster() {
  if (cluster_) cluster_->down();
  if (keep_) {
    fprintf(stderr, "dynkv-bench: the cluster's directory (logs) is kept at %s\n", dir_.c_str());
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::vector<pid_t> OwnCluster::pids() const {
  std::vector<pid_t> out;
  for (size_t i = 0; i < cluster_->size(); i++) out.push_back(cluster_->pid(i));
  return out;
}

}  // namespace dynkv::bench
