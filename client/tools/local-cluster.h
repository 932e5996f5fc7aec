// A cluster of storaged processes on loopback, kept in one directory: what `dynkv local`
// manages, and what the integration tests start. Each node lives in DIR/nodeK/ with its
// data/, storaged.log and pid; DIR/cluster.conf remembers the shape so a later `up` brings
// back the same nodes on the same ports with their data.
#pragma once

#include <chrono>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <vector>

#include "tls.h"

namespace dynkv {

struct LocalClusterOptions {
  std::string dir;
  std::string host = "127.0.0.1";      // the address every node binds and is reached on
  uint32_t nodes = 3;
  uint16_t basePort = 7400;
  uint16_t httpBasePort = 0;           // node K serves HTTP (/metrics, status page) on
                                       // host:httpBasePort+K-1; 0: no HTTP port
  std::string storaged;                // path of the storaged binary; empty: findStoraged()
  std::vector<std::string> extraArgs;  // passed to every storaged (e.g. --durability buffered)
  std::string cluster = "dynkv";       // cluster name: tests give each cluster its own, so a
                                       // node of one can never gossip its way into another
  bool tls = false;                    // mutual TLS, with certificates in DIR/certs (written
                                       // by writeCertificates: nodes n1..nN, client, admin)
};

class PortInUse : public std::runtime_error {
  // A port the cluster needs is held by another program (or another cluster): thrown by
  // up() before it starts any node. The message names the port and how to pick others.
 public:
  using std::runtime_error::runtime_error;
};

class LocalCluster {
 public:
  explicit LocalCluster(LocalClusterOptions options);
  // If DIR/cluster.conf exists, its node count, host, ports and extra arguments win over
  // `options` (a cluster keeps its shape); otherwise `options` are written there.

  static std::string findStoraged();
  // $DYNKV_STORAGED, else storaged beside this executable (or in ../storaged/ of a build
  // tree), else "storaged" on PATH.

  std::vector<std::string> seeds() const;  // HOST:PORT of every node
  std::vector<std::string> httpAddresses() const;  // HOST:PORT of each node's HTTP port;
                                                   // empty when the nodes serve none
  std::string seedList() const;            // the same, comma-separated
  size_t size() const { return options_.nodes; }
  const std::string& dir() const { return options_.dir; }
  const std::string& clusterName() const { return options_.cluster; }
  bool tls() const { return options_.tls; }
  TlsFiles tlsFiles(const std::string& who) const;
  // The CA, certificate and key of "client", "admin" or "node-nK" in DIR/certs; all empty
  // when the cluster is plain TCP.

  size_t up(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // First checks, by binding each, that every port a node not running needs (RPC and HTTP) is
  // free; throws PortInUse naming the first taken one, having started nothing. Then starts
  // every node that is not running, waits until all accept connections, joins to the
  // ring any that is not in it yet (`dynkv admin join`, the same path an operator takes), and
  // waits until the cluster has settled (waitSettled). Returns how many it started. Throws
  // std::runtime_error naming the node (and the end of its log) if one does not come up.

  void waitSettled(std::chrono::milliseconds timeout, std::vector<size_t> nodes = {});
  // Until each of `nodes` (default: all) reports exactly those nodes up, all on one map
  // version, with no transfer pending. Throws std::runtime_error saying which node has not
  // settled when `timeout` passes.

  void down(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // SIGTERM to every running node, SIGKILL to any still alive after `timeout`.

  void start(size_t node, const std::vector<std::string>& moreArgs = {});
  // Starts one node (without waiting); `moreArgs` follow the cluster's own extra arguments, for
  // this start only (e.g. a setting a benchmark changes between runs).
  void waitListening(size_t node, std::chrono::milliseconds timeout);
  void kill(size_t node, int signal);  // sends `signal`; for SIGKILL also reaps and waits
  bool running(size_t node) const;
  pid_t pid(size_t node) const;        // 0 when not running
  std::string nodeDir(size_t node) const;

 private:
  LocalClusterOptions options_;
  std::string logTail(size_t node) const;
  std::string hostPort(uint32_t port) const;
  void checkPorts() const;
};

}  // namespace dynkv
