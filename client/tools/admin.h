// Administration of a cluster: join and leave, the members' status as one node sees it, one
// node's background state (hints, anti-entropy, tombstones) and an anti-entropy repair run now.
// Blocking, on an event loop of its own in the calling thread; for the `dynkv` tool, `dynkv local`
// and tests, not for applications (the SDK's data path never needs it).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "partition-map.h"
#include "tls.h"

namespace dynkv {

void writeCertificates(const std::string& dir, const std::vector<std::string>& nodes,
                       const std::string& client, const std::string& admin, uint32_t days);
// `dynkv admin certs`: creates DIR (0700) if needed and writes into it a new CA (ca.pem, ca.key)
// and, issued by it, a certificate and key for each node (node-NAME.pem/.key, common name
// node:NAME and the DNS name every node's carries, net/tls.h), for the client (client.pem/.key,
// client:NAME) and the admin (admin.pem/.key, admin:NAME): ECDSA P-256, valid `days` days. Keys
// are written 0600. Refuses (std::runtime_error naming the file) to overwrite an existing CA
// key, so that certificates already handed out keep working.

struct MemberView {
  uint64_t id = 0;
  std::string address;
  std::string http;            // HOST:PORT of its HTTP port (metrics, status page); empty: none
  std::string zone;
  uint32_t weight = 1;
  std::string status;          // joining | up | leaving | removed
  uint32_t partitions = 0;     // ring partitions it owns in the reporter's map
  uint32_t pendingTransfers = 0;
  uint32_t handoffPartitions = 0;  // partitions it holds hints for (as last heard)
  bool handoffEverywhere = false;   // more than its record can name: every partition waits
  uint64_t mapVersion = 0;     // the map version it has adopted (as last heard)
  uint64_t heartbeat = 0;      // gossip rounds it has run since it started (as last heard)
  double phi = 0;              // the reporter's failure-detector suspicion of it
  bool suspected = false;
};

struct LocalCopy {
  // One node's own copy of one key.
  std::vector<std::string> values;  // live sibling values, in the node's sibling order
  uint32_t tombstones = 0;          // deletion siblings
  std::string digest;               // hex; equal on two nodes iff they hold the same version
                                    // vector, dots, timestamps and values (in any order)
  std::string versionVector;        // "NODE.EPOCH:COUNTER ..." (ids in hex), in actor order
};

struct HeldCopy {
  // One copy of a key a node holds, and why it holds it.
  enum class Role {
    REPLICA,   // in its store, and the node is on the key's preference list
    STAND_IN,  // a hint kept for `owner`, a replica that was down or slow (sloppy quorum)
    HAND_OFF,  // in its store, but the node is no longer on the preference list: a former
               // owner's copy, kept until the replicas have it
  };
  Role role = Role::REPLICA;
  uint64_t owner = 0;        // STAND_IN: the node the hint is for
  std::string ownerAddress;  // its address; empty if it has left the ring
  LocalCopy copy;
};

struct InspectReport {
  uint32_t partition = 0;
  bool replica = false;                 // the node is on the key's preference list (first N)
  std::vector<HeldCopy> copies;         // its store's copy first, then each hint
  std::optional<LocalCopy> merged;      // every copy synced: what a read of the node answers
};

struct ClusterStatus {
  std::string reporter;
  uint64_t mapVersion = 0;
  std::vector<MemberView> members;

  bool settled() const;
  // Every member is up or removed, the reporter's map holds every up member, and every up
  // member has adopted that map and finished streaming.
};

struct HintsHeld {
  uint64_t owner = 0;        // node id of the owner the hints stand in for
  std::string ownerAddress;  // empty if the owner is not in the node's map any more
  uint64_t count = 0;
};

struct AntiEntropyState {
  int64_t lastCompleteAgeMillis = -1;  // since the last exchange that finished; -1: none yet
  uint64_t exchangesFinished = 0;      // since the node started, like every counter here
  uint64_t exchangesFailed = 0;
  uint64_t segmentsDiffering = 0;  // in the last finished exchange round
  uint64_t keysRepaired = 0;
  uint64_t bytesSent = 0;  // anti-entropy requests and replies the node sent
  uint64_t bytesReceived = 0;
  uint64_t treesDigest = 0;  // equal on two nodes holding the same partitions iff their trees are
  uint32_t partitionsHeld = 0;
  uint64_t treeMemoryBytes = 0;
  bool running = false;  // an exchange is in progress
  struct CallBytes {
    uint64_t sent = 0;
    uint64_t received = 0;
  };
  std::map<std::string, CallBytes> byCall;  // bytesSent/bytesReceived by Peer call (aeKeys...)
};

struct NodeStats {
  // One node's own background state, as it reports it (Admin.nodeStats).
  uint64_t id = 0;
  std::string address;
  uint64_t epoch = 0;       // the incarnation of its data directory
  bool rebuilding = false;  // started empty as a ring member, not yet refilled by anti-entropy
  std::vector<HintsHeld> hints;
  AntiEntropyState antiEntropy;
  uint64_t tombstones = 0;  // objects held that are only tombstones
  uint64_t tombstonesReaped = 0;
  uint64_t partitionsDropped = 0;
  uint32_t admissionSlots = 0;  // background slots its admission controller grants now
  bool admissionEnabled = false;
  int64_t foregroundP99Micros = 0;

  uint64_t hintsHeld() const;  // over every owner
};

struct RepairReport {
  uint32_t exchanges = 0;
  uint32_t failed = 0;
  uint32_t partitions = 0;
  uint64_t segmentsDiffering = 0;
  uint64_t keysRepaired = 0;
  std::string message;  // why exchanges failed, if any did
};

struct SnapshotReport {
  uint64_t bytes = 0;  // the snapshot's data file
  uint64_t keys = 0;   // objects in the node's store as the copy began
};

class AdminClient {
 public:
  AdminClient(std::vector<std::string> seeds, std::string cluster = "dynkv",
              std::string secret = "", const TlsFiles& tls = {});
  // `tls`: the CA, certificate and key to connect with (mutual TLS; an admin:NAME certificate
  // for the admin calls); none named: plain TCP. Throws naming a file that cannot be used.
  ~AdminClient();

  void join(const std::string& address);
  void leave(const std::string& address);
  void forceRemove(const std::string& address, bool evenIfAlive = false);
  // Sent to the first seed that answers. Throw std::runtime_error with the node's reason.
  // forceRemove (`admin remove --force`): the node is set removed at once, without a hand-off;
  // the seed refuses ("refused: ...") a node it does not suspect, unless `evenIfAlive`.

  void joinWhenKnown(const std::string& address, std::chrono::milliseconds timeout,
                     const std::function<void(const std::string& waitingFor)>& progress = {});
  // `admin join` for a node that may have just started: until `timeout`, asks the first seed
  // that answers whether it knows `address` (gossip brings a new node in within a round or
  // two), and joins it as soon as it does; at once if it is up already. About once a second
  // while it waits, `progress` gets a line saying what it waits for (the seed's view, whether
  // the node itself answers). Throws std::runtime_error when a seed refuses the join, or at
  // the timeout with what was waited for and what to check.

  ClusterStatus status(const std::string& node = "");
  // From `node`, or from the first seed that answers.

  std::optional<std::vector<std::string>> localValues(const std::string& node,
                                                      const std::string& key,
                                                      const std::string& ns = "");
  // What one node holds for a key, without a quorum: its live sibling values, or nullopt
  // when it holds nothing. Throws std::runtime_error if the node does not answer (or refuses,
  // e.g. while the key's partition is still streaming in).

  std::optional<LocalCopy> localCopy(const std::string& node, const std::string& key,
                                     const std::string& ns = "");
  // The same read, summarised whole: what a replica-convergence check compares. It triggers
  // no read repair.

  InspectReport inspect(const std::string& node, const std::string& key,
                        const std::string& ns = "", uint32_t n = 3);
  // `admin inspect`: each copy of `key` the node holds, apart (Admin.inspect), marked as a
  // replica's, a stand-in's (a hint for another node) or a former owner's. `n` is the N the
  // preference list is taken with. Throws std::runtime_error naming the node if it does not
  // answer or refuses.

  PartitionMap map(const std::string& node);
  // The partition map `node` routes by.

  NodeStats nodeStats(const std::string& node,
                      std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // `node`'s own background state. Throws std::runtime_error naming the node if it does not
  // answer within `timeout`.

  RepairReport repair(const std::string& node, std::optional<uint32_t> partition,
                      std::function<void(const NodeStats&)> progress = {},
                      std::chrono::milliseconds every = std::chrono::milliseconds(500),
                      std::chrono::milliseconds timeout = std::chrono::minutes(30));
  // Has `node` run an anti-entropy exchange now with every replica it shares `partition` with
  // (nullopt: every partition it holds) and returns its report once they have ended. While it
  // runs, `node`'s stats are read every `every` and handed to `progress` (a stats read that
  // fails is skipped). Throws std::runtime_error naming the node with its reason: a partition
  // out of range ("invalid argument: partition P does not exist; the ring has Q (0 to Q-1)"),
  // a node not in a ring yet, no answer within `timeout`.

  SnapshotReport snapshot(const std::string& node, const std::string& dir,
                          std::chrono::milliseconds timeout = std::chrono::minutes(10));
  // Has `node` copy its whole store, consistent and compacted, into `dir` on its own host while
  // it keeps serving (Admin.snapshot), and waits for the copy. Throws std::runtime_error naming
  // the node with its reason: `dir` not absolute ("invalid argument: ..."), existing and not
  // empty, or another snapshot running ("refused: ..."), the copy failing, no answer within
  // `timeout` (the copy may still finish on the node).

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

void joinToRing(const std::vector<std::string>& seeds, const std::string& cluster,
                const std::vector<std::string>& addresses,
                std::chrono::steady_clock::time_point deadline, const TlsFiles& tls = {});
// Joins each of `addresses` that is not up in the ring yet (`dynkv admin join`), through
// the first of `seeds` that answers. Throws std::runtime_error naming the node it could not
// join by the deadline.

void waitSettled(const std::vector<std::string>& addresses, const std::string& cluster,
                 std::chrono::milliseconds timeout, const TlsFiles& tls = {});
// Until each of `addresses` reports exactly those nodes up, all on one map version, with no
// transfer pending. Throws std::runtime_error saying which node has not settled when
// `timeout` passes. Both connect with `tls` (an admin's files) when it names any.

}  // namespace dynkv
