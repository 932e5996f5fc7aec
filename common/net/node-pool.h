// Connections to storage nodes, shared by every request of one client (or one node).
// A connection is made on first use, authenticated once, and dropped when it breaks; the next
// request reconnects. The pool reports what its calls show (failures, timeouts, latencies) to
// the process's failure detector (failure-detector.h) and answers routing's questions from it,
// so that routing can skip suspected nodes in favour of fallbacks (DESIGN.md, "Request paths").
#pragma once

#include <kj/async-io.h>
#include <kj/map.h>
#include <kj/timer.h>
#include <map>
#include <string>

#include "dynkv.capnp.h"
#include "failure-detector.h"
#include "protocol-version.h"

namespace kj {
class TlsContext;
}

namespace dynkv {

class NodePool final : private kj::TaskSet::ErrorHandler {
 public:
  NodePool(kj::Network& network, kj::Timer& timer, FailureDetector& detector, std::string cluster,
           std::string secret, uint32_t maxValueBytes);
  // `detector` is the process's one failure detector (storaged shares it with gossip; an SDK
  // client has its own); it must outlive the pool. Times given to it are `timer`'s.
  ~NodePool() noexcept(false);

  kj::Promise<wire::Node::Client> node(const std::string& address);
  // The node's capability once the connection is up and authenticated (at once if it is);
  // fails with the connection's error if it cannot be made. A promise rather than a
  // promise-capability on purpose: calls queued on a promise-capability live on in the event
  // loop's daemon tasks and would touch a connection after the pool has closed it.

  kj::Promise<wire::Peer::Client> peer(const std::string& address);
  kj::Promise<wire::Admin::Client> admin(const std::string& address);
  // The node-to-node and admin capabilities granted on the same connection.

  void useTls(kj::TlsContext& tls) { tls_ = &tls; }
  // Connections made from now on speak TLS with `tls` (tls.h): this process's certificate is
  // presented, and a node is trusted only if its certificate is from the cluster's CA and names
  // it a node. `tls` must outlive the pool.

  void claimProtocol(uint32_t protocol) { protocol_ = protocol; }
  // For tests: the protocol version this pool's connections say they speak from now on
  // (PROTOCOL_VERSION by default), to see a node refuse another one.

  void reportFailure(const std::string& address, const kj::Exception& exception);
  // A call to `address` failed: a broken connection is dropped, and the node is suspected
  // for a backoff that doubles with each consecutive failure (100 ms to 5 s).

  void reportTimeout(const std::string& address);
  // A call got no answer in time: suspect the node (its connection may be fine).

  void reportSuccess(const std::string& address);

  bool isSuspect(const std::string& address) const;
  // FailureDetector::suspect now: a recent call failed or timed out (until the backoff
  // passes), or a call has been outstanding so long that, by the phi accrual detector over
  // this node's reply latencies, an answer is no longer to be expected (phi > 8), or (in
  // storaged) the node's gossip heartbeats have stopped.

  double phi(const std::string& address) const;
  // FailureDetector::phi now.

  FailureDetector& detector() { return detector_; }
  int64_t nowMicros() const;
  // The detector's clock: the pool's timer, in microseconds since its origin.

  template <typename T>
  kj::Promise<T> track(const std::string& address, kj::Promise<T> call) {
    // Feeds the failure detector with one call to `address`: its latency when it answers,
    // and its age while it is outstanding.
    uint64_t id = begin(address);
    return call
        .then([this, id](T&& value) {
          finish(id, true);
          return kj::mv(value);
        })
        .attach(kj::defer([this, id]() { finish(id, false); }));
  }

 private:
  struct Link;
  struct Caps {
    wire::Node::Client node;
    wire::Peer::Client peer;
    wire::Admin::Client admin;
  };
  struct Entry {
    kj::Own<Link> link;
    kj::ForkedPromise<Caps> caps;
  };
  uint64_t begin(const std::string& address);
  void finish(uint64_t id, bool answered);

  kj::Network& network_;
  kj::Timer& timer_;
  FailureDetector& detector_;
  std::string cluster_;
  std::string secret_;
  uint32_t maxValueBytes_;
  uint32_t protocol_ = PROTOCOL_VERSION;
  kj::TlsContext* tls_ = nullptr;
  kj::HashMap<kj::String, Entry> entries_;
  kj::TaskSet tasks_;

  Entry& entry(const std::string& address);
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace dynkv
