// The blocking client: dynkv for applications without a kj event loop.
//
// A Client runs its own event-loop thread and forwards each call to it; calls from several
// threads are safe and proceed concurrently. Every call throws dynkv::Error on failure
// (see types.h for what each ErrorKind means).
//
//   dynkv::ClientOptions options;
//   options.seeds = {"127.0.0.1:7400"};
//   dynkv::Client client(options);
//   auto got = client.get("cart:alice");
//   client.put("cart:alice", merged, got.context);
#pragma once

#include <memory>

#include <dynkv/export.h>
#include <dynkv/types.h>

namespace dynkv {

class DYNKV_EXPORT Client {
 public:
  explicit Client(ClientOptions options);
  // Starts the event-loop thread. Connections are made on first use, so constructing a
  // client never fails for an unreachable cluster; the first call does.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  GetResult get(const Key& key, const CallOptions& options = {});
  // Asks the key's N replicas, returns once R have answered: the union of their versions,
  // concurrent ones as siblings. Replicas found stale are repaired in the background.

  Context put(const Key& key, std::string_view value, const Context& context = {},
              const CallOptions& options = {});
  // Writes a version superseding everything `context` saw; returns once W replicas hold it.
  // Returns the context of the new version (to supersede it in turn).

  Context remove(const Key& key, const Context& context, const CallOptions& options = {});
  // Writes a deletion (tombstone) superseding what `context` saw.

  RingInfo ring();
  // The partition map this client routes by: nodes and their shares.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynkv
