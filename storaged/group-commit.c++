#include "group-commit.h"

namespace dynkv::storaged {

kj::Maybe<Bytes> BatchTransaction::get(Table table, Bytes key) { return inner_.get(table, key); }

void BatchTransaction::scan(Table table, Bytes begin, Bytes end,
                            kj::FunctionParam<bool(Bytes key, Bytes value)> visit) {
  inner_.scan(table, begin, end, [&](Bytes key, Bytes value) { return visit(key, value); });
}

void BatchTransaction::put(Table table, Bytes key, Bytes value) {
  wrote_ = true;
  inner_.put(table, key, value);
}

void BatchTransaction::remove(Table table, Bytes key) {
  wrote_ = true;
  inner_.remove(table, key);
}

void BatchTransaction::onCommit(kj::Function<void()> hook) { hooks_.add(kj::mv(hook)); }

GroupCommit::GroupCommit(StorageEngine& engine) : engine_(engine) {
  if (engine_.durability() == Durability::BUFFERED) {
    flusher_ = std::thread([this]() { flusherLoop(); });
  }
}

GroupCommit::~GroupCommit() noexcept(false) {
  if (flusher_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(flusherMutex_);
      stopFlusher_ = true;
    }
    flusherWake_.notify_all();
    flusher_.join();
  }
}

kj::Promise<void> GroupCommit::write(kj::Function<void(BatchTransaction&)> apply) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  enqueue(kj::heap<WriteOf<void>>(kj::mv(apply), kj::mv(paf.fulfiller)));
  return kj::mv(paf.promise);
}

void GroupCommit::enqueue(kj::Own<Write> write) {
  pending_.push_back(kj::mv(write));
  if (!batchScheduled_) {
    // The batch is committed on a later turn, so that every write of this one joins it.
    batchScheduled_ = true;
    batchTask_ = kj::evalLater([this]() { commitBatch(); }).eagerlyEvaluate([](kj::Exception&& e) {
      KJ_LOG(ERROR, "write batch failed", e);
    });
  }
}

void GroupCommit::commitBatch() {
  batchScheduled_ = false;
  auto batch = kj::mv(pending_);
  pending_.clear();

  // Per write: what it threw before writing (it alone is refused), else its commit hooks.
  std::vector<kj::Maybe<kj::Exception>> refusals(batch.size());
  kj::Vector<kj::Function<void()>> hooks;
  auto failure = kj::runCatchingExceptions([&]() {
    engine_.write([&](WriteTransaction& inner) {
      for (size_t i = 0; i < batch.size(); i++) {
        BatchTransaction txn(inner);
        KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { batch[i]->apply(txn); })) {
          // What it wrote cannot be taken back without taking back the whole transaction.
          if (txn.wrote_) kj::throwFatalException(kj::mv(*e));
          refusals[i] = kj::mv(*e);
          continue;
        }
        for (auto& hook : txn.hooks_) hooks.add(kj::mv(hook));
      }
    });
  });

  KJ_IF_MAYBE(e, failure) {
    for (auto& w : batch) w->failed(kj::cp(*e));
    return;
  }
  dirty_ = true;
  for (auto& hook : hooks) {
    KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { hook(); })) {
      KJ_LOG(ERROR, "a commit hook threw; its store's memory may lag what is stored", *e);
    }
  }
  for (size_t i = 0; i < batch.size(); i++) {
    KJ_IF_MAYBE(refusal, refusals[i]) {
      batch[i]->failed(kj::mv(*refusal));
    } else {
      batch[i]->committed();
    }
  }
}

void GroupCommit::flusherLoop() {
  for (;;) {
    bool stop;
    {
      std::unique_lock<std::mutex> lock(flusherMutex_);
      flusherWake_.wait_for(lock, BUFFERED_FLUSH_INTERVAL, [this]() { return stopFlusher_; });
      stop = stopFlusher_;
    }
    // Checked after the wait, so that what was committed before the stop is flushed, even when
    // the stop comes during a flush.
    if (dirty_.exchange(false)) {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([this]() { engine_.flush(); })) {
        KJ_LOG(ERROR, "buffered flush failed; retried next interval unless stopping", *e);
        dirty_ = true;
      }
    }
    if (stop) return;
  }
}

}  // namespace dynkv::storaged
