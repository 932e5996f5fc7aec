// The public value types of client/include/dynkv/types.h.
#include <dynkv/types.h>

#include <algorithm>
#include <kj/encoding.h>

#include "context.h"

namespace dynkv {

const char* toString(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::INVALID_ARGUMENT:
      return "invalid argument";
    case ErrorKind::UNAVAILABLE:
      return "unavailable";
    case ErrorKind::TIMEOUT:
      return "timeout";
    case ErrorKind::REJECTED:
      return "rejected";
  }
  return "unknown";
}

Error::Error(ErrorKind kind, std::string message, std::vector<ReplicaFailure> failures,
             uint32_t acks, uint32_t required)
    : std::runtime_error(std::string(toString(kind)) + ": " + message),
      kind_(kind),
      failures_(std::move(failures)),
      acks_(acks),
      required_(required) {}

Context Context::fromToken(std::string_view token) {
  if (token.empty()) return Context();
  auto decoded = kj::decodeBase64(kj::arrayPtr(token.data(), token.size()));
  if (decoded.hadErrors || decoded.size() == 0) {
    throw Error(ErrorKind::INVALID_ARGUMENT, "context token is not valid base64");
  }
  Context context(std::string(decoded.asChars().begin(), decoded.size()));
  decodeContext(context);  // validates
  return context;
}

std::string Context::token() const {
  if (bytes_.empty()) return "";
  auto text = kj::encodeBase64(
      kj::arrayPtr(reinterpret_cast<const kj::byte*>(bytes_.data()), bytes_.size()));
  return std::string(text.cStr(), text.size());
}

Context encodeContext(const ReadContext& context) {
  return Context(encodeReadContext(context));
}

ReadContext decodeContext(const Context& context) {
  ReadContext out;
  if (auto problem = decodeReadContext(context.bytes(), out)) {
    throw Error(ErrorKind::INVALID_ARGUMENT, *problem);
  }
  return out;
}

bool GetResult::found() const {
  return std::any_of(siblings.begin(), siblings.end(), [](auto& v) { return !v.deleted; });
}

std::vector<std::string> GetResult::values() const {
  std::vector<std::string> out;
  for (auto& v : siblings) {
    if (!v.deleted) out.push_back(v.value);
  }
  return out;
}

std::optional<std::string> lastWriteWins(const std::vector<Version>& siblings) {
  const Version* best = nullptr;
  for (auto& v : siblings) {
    if (best == nullptr || v.timestampMicros > best->timestampMicros ||
        (v.timestampMicros == best->timestampMicros &&
         std::make_pair(!v.deleted, v.value) > std::make_pair(!best->deleted, best->value))) {
      best = &v;
    }
  }
  if (best == nullptr || best->deleted) return std::nullopt;
  return best->value;
}

std::optional<std::string> resolve(const GetResult& result, const Resolver& resolver) {
  if (!result.found()) return std::nullopt;
  if (result.siblings.size() == 1) return result.siblings[0].value;
  return resolver(result.siblings);
}

}  // namespace dynkv
