// What the fuzz targets share: reading bytes as a peer's Cap'n Proto message the way the RPC
// transport does, treating a decoder's refusal as a normal outcome, and failing loudly when an
// invariant that the rest of the code relies on does not hold.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/exception.h>
#include <kj/io.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace dynkv::fuzz {

inline kj::ArrayPtr<const kj::byte> bytesOf(std::string_view s) {
  return kj::arrayPtr(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

template <typename F>
bool refused(F&& f) {
  // Runs a decode; true if it threw a kj::Exception (the decoder refusing the bytes, which is
  // what it must do with what it cannot read). Anything else thrown is a bug, and escapes.
  return kj::runCatchingExceptions(kj::fwd<F>(f)) != nullptr;
}

inline void require(bool ok, const char* invariant) {
  if (!ok) {
    fprintf(stderr, "fuzz invariant broken: %s\n", invariant);
    abort();
  }
}

template <typename Root, typename F>
bool readAsPeerMessage(std::string_view bytes, const capnp::ReaderOptions& options, F&& use) {
  // `bytes` as one message off an RPC connection (a segment table, then the segments) read with
  // `options`, the receiving side's ReaderOptions; `use` gets the root. False if refused.
  return !refused([&]() {
    kj::ArrayInputStream in(bytesOf(bytes));
    capnp::InputStreamMessageReader reader(in, options);
    use(reader.getRoot<Root>());
  });
}

}  // namespace dynkv::fuzz
