// Accepts connections and serves a bootstrap capability on each (storaged's Gateway, one per
// connection so that it can keep what it learns of that connection's sender), within bounds
// on what a peer can make the node spend:
// - connections: at most `maxConnections` open, at most `maxConnectionsPerAddress` from one
//   peer address; past either a new connection is refused (its bootstrap fails OVERLOADED,
//   naming the limit, or in a flood it is just closed), counted and logged;
// - time: a connection that has not authenticated within `handshakeTimeout`, or that moves no
//   byte for `idleTimeout`, is closed;
// - memory: message size and segments (before capnp allocates for a message: checked from its
//   frame header, with a small limit until the connection authenticates), requests in flight
//   (the RPC system's flow limit), and bytes of answers buffered for a peer that does not read
//   them: past `maxWriteBacklog` its requests are no longer read (TCP pushes back on it), and
//   after `slowReaderTimeout` of that the connection is cut;
// - accept() failing (out of descriptors, say) never ends the loop: it is logged, counted and
//   retried after a short pause.
// TwoPartyServer in capnp 0.9 cannot take ReaderOptions; this builds the network itself.
#pragma once

#include <capnp/capability.h>
#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/function.h>
#include <kj/timer.h>

namespace kj {
class TlsContext;
}

namespace dynkv {

struct AcceptCounters {
  // What the loop has done, for a node's metrics. Read on the loop's thread only.
  uint64_t open = 0;               // connections being served now
  uint64_t refused = 0;            // closed at once: `maxConnections` were open
  uint64_t refusedPerAddress = 0;  // closed at once: `maxConnectionsPerAddress` were open
  uint64_t acceptFailures = 0;     // accept() failed (e.g. no descriptor left); retried
  uint64_t handshakeTimeouts = 0;  // closed: not authenticated within `handshakeTimeout`
  uint64_t idleClosed = 0;         // closed: no traffic for `idleTimeout`
  uint64_t slowReadersCut = 0;     // closed: left its answers unread for `slowReaderTimeout`
  uint64_t messagesTooLarge = 0;   // closed: a message declared more than allowed
  uint64_t handshakesEvicted = 0;  // closed: the oldest of `maxHandshakes` handshakes
  uint64_t tlsHandshakesFailed = 0;  // closed: its TLS handshake failed (AcceptOptions::tls)
};

struct AcceptOptions {
  capnp::ReaderOptions reader;  // per-message limits: sized from the largest value allowed
  uint32_t maxConnections = 4096;
  uint32_t maxConnectionsPerAddress = 0;  // 0: no limit per address
  kj::Timer* timer = nullptr;  // for the time limits below and the pause after accept() fails
  kj::Duration handshakeTimeout = 0 * kj::SECONDS;   // 0: none
  kj::Duration idleTimeout = 0 * kj::SECONDS;        // 0: none
  kj::Duration slowReaderTimeout = 0 * kj::SECONDS;  // 0: none (still throttled)
  uint64_t maxWriteBacklog = 0;  // bytes of answers buffered past which reading stops; 0: none
  uint64_t flowLimitWords = 0;   // words of requests in flight (RpcSystem::setFlowLimit); 0: none
  uint32_t maxSegments = 128;    // per message; capnp's own limit is 512
  uint32_t maxHandshakes = 0;
  // Connections whose peer has spoken but not yet authenticated (each holds an RPC system,
  // ~10 KiB); past it the oldest is closed to make room, so a flood of half-open handshakes
  // bounds memory yet cannot keep a client that authenticates at once out. 0: no limit.
  uint64_t handshakeMessageWords = 1024;
  // Largest message before the connection has authenticated: a peer that has shown no secret
  // makes the node hold 8 KiB at most, not the reader's traversal limit.
  AcceptCounters* counters = nullptr;  // kept up to date if set; must outlive the loop
  kj::TlsContext* tls = nullptr;
  // Set: every connection is TLS (tls.h), its handshake part of the connection's handshake
  // (bounded by `handshakeTimeout` and `maxHandshakes`), and a peer that presents no certificate
  // of the context's CA is closed before it is served anything. A connection refused at a limit
  // is closed without a notice. Null: plain TCP. Must outlive the loop.
};

using Authenticated = kj::Function<void()>;
// Called by a connection's bootstrap capability once its peer has authenticated: lifts the
// handshake's time and message-size limits for that connection. Valid while the connection is.

using BootstrapFor =
    kj::Function<capnp::Capability::Client(Authenticated, kj::Maybe<kj::StringPtr>)>;
// The bootstrap capability for one connection, given its Authenticated callback and the common
// name of the certificate its peer presented (null over plain TCP).

kj::Promise<void> serveAuthenticated(kj::ConnectionReceiver& listener, BootstrapFor bootstrapFor,
                                     AcceptOptions options);
// Runs until the promise is dropped; each connection lives until its peer disconnects or a
// limit closes it, and is served the capability bootstrapFor() returns for it (after the TLS
// handshake, with `options.tls`).

kj::Promise<void> serveWithHandshake(
    kj::ConnectionReceiver& listener,
    kj::Function<capnp::Capability::Client(Authenticated)> bootstrapFor, AcceptOptions options);
// serveAuthenticated() for a bootstrap that does not ask who the peer is.

kj::Promise<void> serve(kj::ConnectionReceiver& listener,
                        kj::Function<capnp::Capability::Client()> bootstrapFor,
                        AcceptOptions options);
// serveWithHandshake() for a bootstrap with no handshake: every connection counts as
// authenticated at once.

}  // namespace dynkv
