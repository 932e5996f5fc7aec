// The blocking facade: an AsyncClient on an event-loop thread of its own, driven through
// kj::Executor so that any application thread can call it.
#include <dynkv/client.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <dynkv/async-client.h>
#include <kj/async-io.h>
#include <kj/debug.h>

namespace dynkv {

struct Client::Impl {
  std::thread thread;
  std::mutex mutex;
  std::condition_variable ready;
  kj::Own<const kj::Executor> executor;  // set once the loop thread is up
  AsyncClient* async = nullptr;          // lives on, and is used only from, the loop thread
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> stop;
  std::string startupError;

  explicit Impl(ClientOptions options) {
    thread = std::thread([this, options = std::move(options)]() mutable { loop(std::move(options)); });
    std::unique_lock<std::mutex> lock(mutex);
    ready.wait(lock, [this]() { return executor.get() != nullptr || !startupError.empty(); });
    if (!startupError.empty()) {
      lock.unlock();
      thread.join();
      throw Error(ErrorKind::UNAVAILABLE, "cannot start the client's event loop: " + startupError);
    }
  }

  ~Impl() {
    stop->fulfill();
    thread.join();
  }

  void loop(ClientOptions options) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      auto io = kj::setupAsyncIo();
      auto client = AsyncClient::create(io.provider->getNetwork(), io.provider->getTimer(),
                                        std::move(options));
      auto paf = kj::newPromiseAndCrossThreadFulfiller<void>();
      {
        std::lock_guard<std::mutex> lock(mutex);
        async = client.get();
        stop = kj::mv(paf.fulfiller);
        executor = kj::getCurrentThreadExecutor().addRef();
      }
      ready.notify_all();
      paf.promise.wait(io.waitScope);
    })) {
      std::lock_guard<std::mutex> lock(mutex);
      if (executor.get() == nullptr) {
        startupError = e->getDescription().cStr();
        ready.notify_all();
      } else {
        KJ_LOG(ERROR, "dynkv client event loop failed", *e);
      }
    }
  }

  template <typename T, typename Func>
  T call(Func&& func) {
    // Result<T> crosses threads by value; failures are rethrown here, on the caller's thread.
    kj::Maybe<Result<T>> result;
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() {
      result = executor->executeSync([&]() { return func(*async); });
    })) {
      throw Error(ErrorKind::UNAVAILABLE, std::string("client failure: ") + e->getDescription().cStr());
    }
    KJ_IF_MAYBE(r, result) { return std::move(*r).value(); }
    KJ_UNREACHABLE;
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Client::~Client() = default;

GetResult Client::get(const Key& key, const CallOptions& options) {
  return impl_->call<GetResult>([&](AsyncClient& c) { return c.get(key, options); });
}

Context Client::put(const Key& key, std::string_view value, const Context& context,
                    const CallOptions& options) {
  return impl_->call<Context>(
      [&](AsyncClient& c) { return c.put(key, std::string(value), context, options); });
}

Context Client::remove(const Key& key, const Context& context, const CallOptions& options) {
  return impl_->call<Context>([&](AsyncClient& c) { return c.remove(key, context, options); });
}

RingInfo Client::ring() {
  return impl_->call<RingInfo>([&](AsyncClient& c) { return c.ring(); });
}

}  // namespace dynkv
