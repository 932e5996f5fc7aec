// Connections to storage nodes, shared by every request of one client (or one node).
// A connection is made on first use, authenticated once, and dropped when it breaks; the next
// request reconnects. The pool also remembers which nodes failed recently so that routing
// can skip them in favour of fallbacks (DESIGN.md, "Request paths").
#pragma once

#include <kj/async-io.h>
#include <kj/map.h>
#include <kj/timer.h>
#include <map>
#include <string>

#include "dynkv.capnp.h"
#include "phi-accrual.h"

namespace dynkv {

class NodePool final : private kj::TaskSet::ErrorHandler {
 public:
  NodePool(kj::Network& network, kj::Timer& timer, std::string cluster, std::string secret,
           uint32_t maxValueBytes);
  ~NodePool() noexcept(false);

  kj::Promise<wire::Node::Client> node(const std::string& address);
  // The node's capability once the connection is up and authenticated (at once if it is);
  // fails with the connection's error if it cannot be made. A promise rather than a
  // promise-capability on purpose: calls queued on a promise-capability live on in the event
  // loop's daemon tasks and would touch a connection after the pool has closed it.

  kj::Promise<wire::Peer::Client> peer(const std::string& address);
  kj::Promise<wire::Admin::Client> admin(const std::string& address);
  // The node-to-node and admin capabilities granted on the same connection.

  void reportFailure(const std::string& address, const kj::Exception& exception);
  // A call to `address` failed: a broken connection is dropped, and the node is suspected
  // for a backoff that doubles with each consecutive failure (100 ms to 5 s).

  void reportTimeout(const std::string& address);
  // A call got no answer in time: suspect the node (its connection may be fine).

  void reportSuccess(const std::string& address);

  bool isSuspect(const std::string& address) const;
  // Suspected when a recent call failed or timed out (until the backoff passes), or when a
  // call has been outstanding so long that, by the phi accrual detector over this node's
  // reply latencies, an answer is no longer to be expected (phi > 8).

  double phi(const std::string& address) const;

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
  struct Health {
    uint32_t failures = 0;
    kj::TimePoint retryAt = kj::origin<kj::TimePoint>();
    PhiAccrual latency{latencyDetectorOptions()};
    std::map<uint64_t, kj::TimePoint> outstanding;  // call id -> sent at
  };
  struct Call {
    std::string address;
    kj::TimePoint sent;
  };
  static PhiAccrual::Options latencyDetectorOptions();
  uint64_t begin(const std::string& address);
  void finish(uint64_t id, bool answered);
  Health& health(const std::string& address);
  std::map<uint64_t, Call> calls_;
  uint64_t nextCall_ = 1;

  kj::Network& network_;
  kj::Timer& timer_;
  std::string cluster_;
  std::string secret_;
  uint32_t maxValueBytes_;
  kj::HashMap<kj::String, Entry> entries_;
  kj::HashMap<kj::String, Health> health_;
  kj::TaskSet tasks_;

  Entry& entry(const std::string& address);
  void suspect(const std::string& address);
  void taskFailed(kj::Exception&& exception) override;
};

}  // namespace dynkv
