// The benchmark's own cluster: storaged processes on loopback in a temporary directory, on a
// free port range, stopped and removed (unless kept) when it goes away, however the
// benchmark ends.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "local-cluster.h"

namespace dynkv::bench {

class OwnCluster {
 public:
  OwnCluster(uint32_t nodes, std::vector<std::string> extraArgs, bool keep, bool tls = false);
  // Starts `nodes` storaged processes, each with `extraArgs`, and waits until they form one
  // ring (LocalCluster::up). `keep`: leave the directory (logs, data) behind at the end.
  // `tls`: mutual TLS, as `dynkv local up --tls` (local().tlsFiles("client") for a client).
  ~OwnCluster();

  std::vector<std::string> seeds() const { return cluster_->seeds(); }
  std::vector<pid_t> pids() const;
  LocalCluster& local() { return *cluster_; }

 private:
  bool keep_;
  std::string dir_;
  std::optional<LocalCluster> cluster_;
};

}  // namespace dynkv::bench
