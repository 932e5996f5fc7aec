// A kj::AsyncIoStream wrapper that batches Cap'n Proto RPC traffic on one connection.
//
// capnp 0.9's TwoPartyVatNetwork writes each message with its own writev() and reads each
// received message with two or three read() calls (header, body, and the EAGAIN that ends a
// burst); every call also costs a Finish message. With many calls in flight that is ~12
// system calls per call on each side, and on loopback the system calls are most of the cost
// (bench/ profile: ~60% of CPU in the kernel, malloc and kj's event plumbing around them).
// This wrapper
// - serves reads from a 64 KiB buffer filled by one read(), so a burst of messages costs one
//   system call instead of two or three each;
// - completes each write() at once into a buffer and sends everything written during one
//   turn of the event loop with a single write(), from kj::evalLast() (after every other
//   queued event: capnp issues a connection's writes one per turn, chained, so an earlier
//   flush would send them one by one again).
// A write error fails the next write() and shuts the connection down for reading, so capnp
// sees the disconnect as it would have. Above MAX_BUFFERED bytes, write() waits for the
// flush (backpressure).
#pragma once

#include <kj/async-io.h>
#include <kj/debug.h>
#include <cstring>
#include <vector>

namespace dynkv {

class BufferedStream final : public kj::AsyncIoStream {
 public:
  explicit BufferedStream(kj::AsyncIoStream& inner) : inner_(inner), readBuffer_(READ_BUFFER) {}

  static constexpr size_t READ_BUFFER = 64 * 1024;
  static constexpr size_t MAX_BUFFERED = 4 * 1024 * 1024;

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    return readSome(reinterpret_cast<kj::byte*>(buffer), minBytes, maxBytes, 0);
  }

  kj::Promise<void> write(const void* buffer, size_t size) override {
    auto bytes = reinterpret_cast<const kj::byte*>(buffer);
    pending_.insert(pending_.end(), bytes, bytes + size);
    return buffered();
  }

  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    for (auto& piece : pieces) pending_.insert(pending_.end(), piece.begin(), piece.end());
    return buffered();
  }

  kj::Promise<void> whenWriteDisconnected() override { return inner_.whenWriteDisconnected(); }

  void shutdownWrite() override {
    // After whatever is still buffered.
    if (!flushing_) {
      inner_.shutdownWrite();
    } else {
      shutdownAfterFlush_ = true;
    }
  }

  void abortRead() override { inner_.abortRead(); }
  kj::Maybe<int> getFd() const override { return inner_.getFd(); }

 private:
  kj::AsyncIoStream& inner_;
  std::vector<kj::byte> readBuffer_;
  size_t readBegin_ = 0, readEnd_ = 0;
  std::vector<kj::byte> pending_;  // written by the caller, not yet handed to the socket
  std::vector<kj::byte> sending_;  // being written to the socket
  bool flushing_ = false;
  bool shutdownAfterFlush_ = false;
  kj::Maybe<kj::Exception> writeError_;
  kj::Maybe<kj::ForkedPromise<void>> flushed_;

  kj::Promise<size_t> readSome(kj::byte* out, size_t minBytes, size_t maxBytes, size_t done) {
    size_t n = kj::min(maxBytes - done, readEnd_ - readBegin_);
    memcpy(out + done, readBuffer_.data() + readBegin_, n);
    readBegin_ += n;
    done += n;
    if (done >= minBytes) return done;
    readBegin_ = readEnd_ = 0;
    return inner_.tryRead(readBuffer_.data(), 1, readBuffer_.size())
        .then([this, out, minBytes, maxBytes, done](size_t got) -> kj::Promise<size_t> {
          if (got == 0) return done;  // end of stream
          readEnd_ = got;
          return readSome(out, minBytes, maxBytes, done);
        });
  }

  kj::Promise<void> buffered() {
    KJ_IF_MAYBE(e, writeError_) { return kj::cp(*e); }
    if (!flushing_) {
      flushing_ = true;
      flushed_ = kj::evalLast([this]() { return flush(); })
                     .catch_([this](kj::Exception&& e) {
                       writeError_ = kj::cp(e);
                       flushing_ = false;
                       inner_.abortRead();  // capnp learns of the failure from the read side
                       kj::throwFatalException(kj::mv(e));
                     })
                     .fork();
      // Keep the flush running whether or not anyone waits on it.
      KJ_IF_MAYBE(f, flushed_) { running_ = f->addBranch().eagerlyEvaluate([](kj::Exception&&) {}); }
    }
    if (pending_.size() > MAX_BUFFERED) {
      KJ_IF_MAYBE(f, flushed_) { return f->addBranch(); }
    }
    return kj::READY_NOW;
  }

  kj::Promise<void> flush() {
    if (pending_.empty()) {
      flushing_ = false;
      if (shutdownAfterFlush_) inner_.shutdownWrite();
      return kj::READY_NOW;
    }
    sending_.swap(pending_);
    pending_.clear();
    return inner_.write(sending_.data(), sending_.size()).then([this]() {
      sending_.clear();
      return flush();
    });
  }

  kj::Promise<void> running_ = nullptr;  // declared last: destroyed first, before the buffers
};

}  // namespace dynkv
