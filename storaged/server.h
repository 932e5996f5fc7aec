// Accepts connections and serves the bootstrap Gateway on each, with message size and
// traversal limits set (TwoPartyServer in capnp 0.9 cannot take ReaderOptions).
#pragma once

#include <capnp/capability.h>
#include <capnp/message.h>
#include <kj/async-io.h>

namespace dynkv::storaged {

kj::Promise<void> serve(kj::ConnectionReceiver& listener, capnp::Capability::Client bootstrap,
                        capnp::ReaderOptions options);
// Runs until the listener fails; each connection lives until its peer disconnects.

}  // namespace dynkv::storaged
