// libFuzzer target: the opaque context of a read, as it comes back from outside. The first
// byte picks the form, the rest is its input:
//   even  the context bytes a server-driven call carries (decodeReadContext, storaged);
//   odd   the printable token a user passes on a command line or from a script
//         (Context::fromToken, the SDK: base64, then the same decoder).
// Refusal is fine (a message, or Error(INVALID_ARGUMENT) from the SDK). A context accepted must
// hold at most MAX_DECODED_VV_ENTRIES entries and read back the same after encoding, as bytes
// and as a token.
#include <algorithm>
#include <dynkv/types.h>

#include <optional>
#include <string>

#include "codec.h"
#include "context.h"
#include "fuzz-support.h"
#include "read-context.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dynkv;
  using namespace dynkv::fuzz;
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  ReadContext context;
  if (data[0] % 2 == 0) {
    if (decodeReadContext(bytes, context)) return 0;
  } else {
    try {
      context = decodeContext(Context::fromToken(bytes));
    } catch (const Error& e) {
      require(e.kind() == ErrorKind::INVALID_ARGUMENT, "a bad token is an invalid argument");
      return 0;
    }
  }

  auto& seen = context.seen;
  require(seen.vv.size() <= MAX_DECODED_VV_ENTRIES, "vv within MAX_DECODED_VV_ENTRIES");
  require(seen.writeIds.size() <= Limits::MAX_SIBLINGS, "write ids within MAX_SIBLINGS");
  require(std::is_sorted(seen.writeIds.begin(), seen.writeIds.end()) &&
              std::adjacent_find(seen.writeIds.begin(), seen.writeIds.end()) ==
                  seen.writeIds.end() &&
              std::count(seen.writeIds.begin(), seen.writeIds.end(), 0) == 0,
          "write ids sorted, unique, not 0");
  auto same = [&context](const ReadContext& other) {
    return other.seen.vv == context.seen.vv && other.seen.writeIds == context.seen.writeIds &&
           other.fastest == context.fastest;
  };
  ReadContext again;
  require(!decodeReadContext(encodeReadContext(context), again), "encoded context decodes");
  require(same(again), "bytes round trip");
  auto token = encodeContext(context).token();
  require(same(decodeContext(Context::fromToken(token))), "token round trip");
  return 0;
}
