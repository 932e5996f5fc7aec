// Group commit (DESIGN.md, "Local storage"): every write that arrives during one turn of the
// event loop joins one engine transaction, and so, with sync durability, one fsync; each
// writer's promise resolves once that transaction is committed. It is the one way the daemon's
// stores write (the versioned store, the hint store, membership records): whoever writes in a
// turn shares the turn's transaction. With buffered durability a flusher thread makes the
// committed transactions durable every few milliseconds, off the event loop.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <kj/async.h>
#include <kj/debug.h>
#include <kj/function.h>
#include <kj/vector.h>
#include <mutex>
#include <thread>
#include <vector>

#include "engine.h"

namespace dynkv::storaged {

class BatchTransaction final : public WriteTransaction {
  // The batch's engine transaction as one write sees it: reads see what the writes before it
  // in the batch wrote. Valid only during the call to the write's function.
 public:
  kj::Maybe<Bytes> get(Table table, Bytes key) override;
  void scan(Table table, Bytes begin, Bytes end,
            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) override;
  void put(Table table, Bytes key, Bytes value) override;
  void remove(Table table, Bytes key) override;

  void onCommit(kj::Function<void()> hook);
  // Runs `hook` on the event loop once the batch is committed, before any of the batch's
  // promises resolve, whether or not anyone still waits for this write's promise: for
  // in-memory state that must follow what is stored (the hint store's counts). Hooks run in
  // the order they were added; one must not throw. Dropped, unrun, if this write is refused
  // or the batch fails.

 private:
  friend class GroupCommit;
  explicit BatchTransaction(WriteTransaction& inner) : inner_(inner) {}

  WriteTransaction& inner_;
  bool wrote_ = false;  // put() or remove() was called
  kj::Vector<kj::Function<void()>> hooks_;
};

class GroupCommit {
 public:
  explicit GroupCommit(StorageEngine& engine);
  // `engine` must outlive the GroupCommit. With a BUFFERED engine this starts the flusher
  // thread: it calls engine.flush() every BUFFERED_FLUSH_INTERVAL while anything was committed
  // since the last flush, so an fsync never blocks the event loop (it did, 7% of the time,
  // when the loop ran it; see bench/).

  ~GroupCommit() noexcept(false);
  // Stops the flusher once it has flushed what was committed since its last flush. Writes
  // still pending are dropped unrun: their promises are rejected, nothing of them is stored.

  static constexpr auto BUFFERED_FLUSH_INTERVAL = std::chrono::milliseconds(5);

  StorageEngine& engine() { return engine_; }
  // The engine the batches commit to: for reads, and for a store's start-up (nothing can be
  // queued yet). A write made on it directly is part of no batch.

  kj::Promise<void> write(kj::Function<void(BatchTransaction&)> apply);
  template <typename T>
  kj::Promise<T> write(kj::Function<T(BatchTransaction&)> apply);
  // Queues `apply` for this turn's batch and resolves (to what it returned, for write<T>) once
  // the batch's transaction is committed (with SYNC durability: on disk). The writes of a
  // batch run in the order they were queued, one transaction for all, on a later turn of the
  // event loop. `apply` cannot wait for anything (no transaction is held across a promise);
  // it must own what it uses, or refer only to what outlives the GroupCommit's pending writes
  // (a store's `this`: stores and their GroupCommit are destroyed together).
  //
  // A write that throws before it has put or removed anything is refused: its promise is
  // rejected with what it threw and the batch goes on without it (a write decides whether it
  // is acceptable before it changes anything). One that throws after writing cannot be undone
  // alone, so the whole batch fails with what it threw. A batch that fails (that, or the
  // engine failing the transaction: a full disk, an I/O error) stores nothing and rejects
  // every promise in it with the failure; earlier, acknowledged batches are untouched.

 private:
  class Write {
   public:
    virtual ~Write() noexcept(false) = default;
    virtual void apply(BatchTransaction& txn) = 0;
    virtual void committed() = 0;
    virtual void failed(kj::Exception&& e) = 0;
  };
  template <typename T>
  class WriteOf;

  StorageEngine& engine_;
  std::vector<kj::Own<Write>> pending_;
  kj::Promise<void> batchTask_ = nullptr;  // the next batch, while one is scheduled
  bool batchScheduled_ = false;

  std::atomic<bool> dirty_{false};  // committed since the flusher's last flush
  std::mutex flusherMutex_;
  std::condition_variable flusherWake_;
  bool stopFlusher_ = false;
  std::thread flusher_;

  void enqueue(kj::Own<Write> write);
  void commitBatch();
  void flusherLoop();
};

// ---------------------------------------------------------------------------------------------
// Inline implementation details

template <typename T>
class GroupCommit::WriteOf final : public Write {
 public:
  WriteOf(kj::Function<T(BatchTransaction&)> f, kj::Own<kj::PromiseFulfiller<T>> fulfiller)
      : f_(kj::mv(f)), fulfiller_(kj::mv(fulfiller)) {}
  void apply(BatchTransaction& txn) override { result_ = f_(txn); }
  void committed() override { fulfiller_->fulfill(kj::mv(KJ_ASSERT_NONNULL(result_))); }
  void failed(kj::Exception&& e) override { fulfiller_->reject(kj::mv(e)); }

 private:
  kj::Function<T(BatchTransaction&)> f_;
  kj::Own<kj::PromiseFulfiller<T>> fulfiller_;
  kj::Maybe<T> result_;
};

template <>
class GroupCommit::WriteOf<void> final : public Write {
 public:
  WriteOf(kj::Function<void(BatchTransaction&)> f, kj::Own<kj::PromiseFulfiller<void>> fulfiller)
      : f_(kj::mv(f)), fulfiller_(kj::mv(fulfiller)) {}
  void apply(BatchTransaction& txn) override { f_(txn); }
  void committed() override { fulfiller_->fulfill(); }
  void failed(kj::Exception&& e) override { fulfiller_->reject(kj::mv(e)); }

 private:
  kj::Function<void(BatchTransaction&)> f_;
  kj::Own<kj::PromiseFulfiller<void>> fulfiller_;
};

template <typename T>
kj::Promise<T> GroupCommit::write(kj::Function<T(BatchTransaction&)> apply) {
  auto paf = kj::newPromiseAndFulfiller<T>();
  enqueue(kj::heap<WriteOf<T>>(kj::mv(apply), kj::mv(paf.fulfiller)));
  return kj::mv(paf.promise);
}

}  // namespace dynkv::storaged
