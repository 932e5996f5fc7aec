// Accepts connections and serves a bootstrap capability on each (storaged's Gateway, one per
// connection so that it can keep what it learns of that connection's sender), with
// message size and traversal limits set (TwoPartyServer in capnp 0.9 cannot take
// ReaderOptions) and a bound on how many connections are open at once.
#pragma once

#include <capnp/capability.h>
#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/function.h>

namespace dynkv {

struct AcceptCounters {
  // What the loop has done, for a node's metrics. Read on the loop's thread only.
  uint64_t open = 0;     // connections being served now
  uint64_t refused = 0;  // connections closed at once because `maxConnections` were open
};

struct AcceptOptions {
  capnp::ReaderOptions reader;  // per-message limits: sized from the largest value allowed
  uint32_t maxConnections = 4096;
  // Past this many open connections a new one is closed at once (and logged) rather than
  // served: a peer that opens connections without end cannot exhaust descriptors or memory.
  AcceptCounters* counters = nullptr;  // kept up to date if set; must outlive the loop
};

kj::Promise<void> serve(kj::ConnectionReceiver& listener,
                        kj::Function<capnp::Capability::Client()> bootstrapFor,
                        AcceptOptions options);
// Runs until the listener fails; each connection lives until its peer disconnects and is served
// the capability bootstrapFor() returns for it.

}  // namespace dynkv
