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
//
// With StreamLimits set (the accept loop's side, which faces peers it does not trust yet):
// - a frame whose header declares more segments or words than allowed fails the read before
//   capnp sees that header, so capnp never allocates for it (capnp 0.9 allocates the whole
//   declared size as soon as it has read the segment table);
// - while more than `maxWriteBacklog` bytes wait to be written, no more is read: a peer that
//   sends requests and never reads the answers stops being read, and TCP pushes back on it;
// - the read buffer exists only while bytes are arriving: an idle connection waits with its
//   read going straight into capnp's 8-byte header, so 20,000 idle peers cost no 64 KiB each.
#pragma once

#include <kj/async-io.h>
#include <kj/debug.h>
#include <algorithm>
#include <cstring>
#include <vector>

namespace dynkv {

struct StreamLimits {
  // What one connection may make its reader hold. 0 for a number: no limit.
  uint64_t maxFrameWords = 0;    // the most words one message's segments may declare
  uint32_t maxSegments = 0;      // the most segments one message may declare
  uint64_t maxWriteBacklog = 0;  // bytes waiting to be written past which reading stops
};

class BufferedStream final : public kj::AsyncIoStream {
 public:
  explicit BufferedStream(kj::AsyncIoStream& inner, StreamLimits limits = {})
      : inner_(inner), limits_(limits) {}

  static constexpr size_t READ_BUFFER = 64 * 1024;
  static constexpr size_t MAX_BUFFERED = 4 * 1024 * 1024;

  kj::Promise<size_t> tryRead(void* buffer, size_t minBytes, size_t maxBytes) override {
    auto out = reinterpret_cast<kj::byte*>(buffer);
    return unthrottled().then([this, out, minBytes, maxBytes]() {
      return readSome(out, minBytes, maxBytes, 0);
    }).then([this, out](size_t got) {
      meter(out, got);
      moved_ += got;
      return got;
    });
  }

  kj::Promise<size_t> awaitData() {
    // Waits for the peer's first bytes (up to 8, kept for the first read); 0: it hung up first.
    // Lets the accept loop build a connection's RPC system only once its peer says something.
    return inner_.tryRead(early_, 1, sizeof(early_)).then([this](size_t got) {
      earlyEnd_ = got;
      return got;
    });
  }

  void setFrameLimit(uint64_t maxFrameWords) { limits_.maxFrameWords = maxFrameWords; }
  // From the next frame on (the accept loop raises it once a connection has authenticated).
  void setReadAhead(bool on) { readAhead_ = on; }
  // Whether reads fill the 64 KiB buffer (the default) or go straight to the reader, one
  // system call each (the accept loop's choice until a connection has authenticated).

  uint64_t bytesMoved() const { return moved_; }
  // Bytes read and written so far: a connection that moves none for a while is idle.
  size_t writeBacklog() const { return pending_.size() + sending_.size(); }
  bool throttled() const { return throttled_; }
  // True while reading waits for the peer to take what was written to it.
  uint64_t throttleEpisodes() const { return throttleEpisodes_; }
  // How many times reading has started waiting so: tells one episode from the next.
  kj::Promise<void> whenThrottled() {
    // Resolves when reading next starts waiting for the peer to read.
    auto paf = kj::newPromiseAndFulfiller<void>();
    onThrottled_ = kj::mv(paf.fulfiller);
    return kj::mv(paf.promise);
  }
  bool messageRefused() const { return messageRefused_; }
  // True once a frame declared more words or segments than allowed (the read failed).

  kj::Promise<void> write(const void* buffer, size_t size) override {
    auto bytes = reinterpret_cast<const kj::byte*>(buffer);
    pending_.insert(pending_.end(), bytes, bytes + size);
    moved_ += size;
    return buffered();
  }

  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    for (auto& piece : pieces) {
      pending_.insert(pending_.end(), piece.begin(), piece.end());
      moved_ += piece.size();
    }
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
  StreamLimits limits_;
  kj::byte early_[8];  // awaitData()'s bytes, read before anything else
  size_t earlyBegin_ = 0, earlyEnd_ = 0;
  bool readAhead_ = true;
  // READ_BUFFER bytes while a burst is read, else empty; not zeroed (a connection that goes
  // idle between bursts gives it back and takes a new one, at the cost of a malloc).
  kj::Array<kj::byte> readBuffer_;
  size_t readBegin_ = 0, readEnd_ = 0;
  std::vector<kj::byte> pending_;  // written by the caller, not yet handed to the socket
  std::vector<kj::byte> sending_;  // being written to the socket
  bool flushing_ = false;
  bool shutdownAfterFlush_ = false;
  kj::Maybe<kj::Exception> writeError_;
  kj::Maybe<kj::ForkedPromise<void>> flushed_;
  uint64_t moved_ = 0;
  bool throttled_ = false;
  uint64_t throttleEpisodes_ = 0;
  kj::Own<kj::PromiseFulfiller<void>> onThrottled_;
  bool messageRefused_ = false;

  // The capnp frame being read (the stream framing: a word holding the segment count less one
  // and the first segment's size, the other sizes, padding to a word, then the segments).
  kj::byte header_[8];
  size_t headerHave_ = 0;
  uint64_t segments_ = 0;     // of the current frame, once its first word is in
  uint64_t tableLeft_ = 0;    // bytes of its segment table still to come
  uint64_t words_ = 0;        // its size so far, from the table
  uint64_t bodyLeft_ = 0;     // bytes of its segments still to come
  uint32_t sizeBytes_[1] = {0};
  size_t sizeHave_ = 0;
  uint64_t sizesRead_ = 0;    // entries of its segment table read (the last may be padding)

  kj::Promise<void> unthrottled() {
    // Reads nothing more while the peer leaves too much unread: what it asks for next would
    // only wait in memory.
    if (limits_.maxWriteBacklog == 0 || writeBacklog() <= limits_.maxWriteBacklog) {
      throttled_ = false;
      return kj::READY_NOW;
    }
    if (!throttled_) {
      throttled_ = true;
      throttleEpisodes_++;
      if (onThrottled_.get() != nullptr) {
        auto fulfiller = kj::mv(onThrottled_);  // one episode, one wake-up
        fulfiller->fulfill();
      }
    }
    KJ_IF_MAYBE(f, flushed_) {
      return f->addBranch().then([this]() { return unthrottled(); });
    }
    throttled_ = false;
    return kj::READY_NOW;
  }

  void checkFrame() {
    if (limits_.maxSegments != 0 && segments_ > limits_.maxSegments) {
      messageRefused_ = true;
      kj::throwFatalException(KJ_EXCEPTION(FAILED, "message refused: too many segments",
                                           segments_, limits_.maxSegments));
    }
    if (limits_.maxFrameWords != 0 && words_ > limits_.maxFrameWords) {
      messageRefused_ = true;
      kj::throwFatalException(KJ_EXCEPTION(FAILED, "message refused: larger than allowed",
                                           words_, limits_.maxFrameWords));
    }
  }

  void meter(const kj::byte* in, size_t size) {
    // Follows the frames through the bytes handed to capnp; throws (failing this read, so capnp
    // never sees the header) when one declares more than the limits allow.
    if (limits_.maxFrameWords == 0 && limits_.maxSegments == 0) return;
    while (size > 0) {
      if (bodyLeft_ > 0) {
        size_t n = size_t(std::min<uint64_t>(bodyLeft_, size));
        bodyLeft_ -= n, in += n, size -= n;
      } else if (tableLeft_ > 0) {
        size_t n = std::min<size_t>(4 - sizeHave_, size);
        memcpy(reinterpret_cast<kj::byte*>(sizeBytes_) + sizeHave_, in, n);
        sizeHave_ += n, tableLeft_ -= n, in += n, size -= n;
        if (sizeHave_ == 4) {
          // Little-endian, as this host is; the padding entry is no segment's size.
          if (++sizesRead_ < segments_) words_ += sizeBytes_[0];
          sizeHave_ = 0;
        }
        if (tableLeft_ == 0) startBody();
      } else {
        size_t n = std::min<size_t>(8 - headerHave_, size);
        memcpy(header_ + headerHave_, in, n);
        headerHave_ += n, in += n, size -= n;
        if (headerHave_ < 8) return;
        headerHave_ = 0;
        uint32_t first[2];
        memcpy(first, header_, 8);
        segments_ = uint64_t(first[0]) + 1;
        words_ = first[1];
        sizesRead_ = 0;
        checkFrame();
        // The other segments' sizes, padded to a whole word.
        tableLeft_ = ((segments_ - 1) + (segments_ % 2 == 0 ? 1 : 0)) * 4;
        if (tableLeft_ == 0) startBody();
      }
    }
  }

  void startBody() {
    checkFrame();
    bodyLeft_ = words_ * 8;
  }

  kj::Promise<size_t> readSome(kj::byte* out, size_t minBytes, size_t maxBytes, size_t done) {
    if (earlyBegin_ < earlyEnd_) {
      size_t n = kj::min(maxBytes - done, earlyEnd_ - earlyBegin_);
      memcpy(out + done, early_ + earlyBegin_, n);
      earlyBegin_ += n;
      done += n;
      if (done >= minBytes) return done;
    }
    size_t n = kj::min(maxBytes - done, readEnd_ - readBegin_);
    if (n > 0) memcpy(out + done, readBuffer_.begin() + readBegin_, n);
    readBegin_ += n;
    done += n;
    if (done >= minBytes) return done;
    readBegin_ = readEnd_ = 0;
    if (!readAhead_ || maxBytes - done <= 8) {
      // Nothing buffered and the reader wants a frame's first word, or reads ahead are off (a
      // peer not yet trusted): read straight into the reader's memory. An idle connection waits
      // here holding no buffer of its own, and one that sends a byte now and then cannot make
      // the node hold 64 KiB for it.
      readBuffer_ = nullptr;
      return inner_.tryRead(out + done, minBytes - done, maxBytes - done)
          .then([done](size_t got) { return done + got; });
    }
    if (readBuffer_.size() == 0) readBuffer_ = kj::heapArray<kj::byte>(READ_BUFFER);
    return inner_.tryRead(readBuffer_.begin(), 1, readBuffer_.size())
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
