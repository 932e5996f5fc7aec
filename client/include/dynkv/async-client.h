// The kj-promise client, for applications on a kj event loop. Same semantics as the
// blocking Client (client.h), but no call blocks and failures come back as values.
#pragma once

#include <kj/async-io.h>
#include <kj/memory.h>
#include <kj/timer.h>

#include <dynkv/export.h>
#include <dynkv/types.h>

namespace dynkv {

class DYNKV_EXPORT AsyncClient {
 public:
  static kj::Own<AsyncClient> create(kj::Network& network, kj::Timer& timer,
                                     ClientOptions options);
  // The client uses `network` to reach nodes and `timer` for every deadline (inject a
  // kj::TimerImpl to drive time in tests). Both must outlive it, as must the event loop.

  virtual ~AsyncClient() noexcept(false) = default;

  virtual kj::Promise<Result<GetResult>> get(Key key, CallOptions options = {}) = 0;
  virtual kj::Promise<Result<Context>> put(Key key, std::string value, Context context = {},
                                           CallOptions options = {}) = 0;
  virtual kj::Promise<Result<Context>> remove(Key key, Context context,
                                              CallOptions options = {}) = 0;
  virtual kj::Promise<Result<RingInfo>> ring() = 0;
  // See client.h for each call's contract.
};

}  // namespace dynkv
