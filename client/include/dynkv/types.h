// dynkv's public vocabulary: keys, versions, contexts, per-call options and errors.
// Standard types only, so applications without kj can include it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <dynkv/export.h>
#include <dynkv/namespace-kind.h>

namespace dynkv {

struct Key {
  // A key within a namespace. Namespaces are independent keyspaces with their own
  // versioning (ClientOptions::namespaces); "" is the default namespace.
  std::string ns;
  std::string key;

  Key(const char* k) : key(k) {}  // NOLINT: implicit, so get("k") reads naturally
  Key(std::string k) : key(std::move(k)) {}  // NOLINT
  Key(std::string_view k) : key(k) {}  // NOLINT
  Key(std::string n, std::string k) : ns(std::move(n)), key(std::move(k)) {}
};

struct Version {
  // One of a key's concurrent versions (a sibling).
  std::string value;           // empty when `deleted`
  bool deleted = false;        // a tombstone: a delete concurrent with the other versions
  int64_t timestampMicros = 0; // the wall clock of the node (or LWW client) that wrote it
};

class DYNKV_EXPORT Context {
  // The opaque causal context of a read. Pass it back to put() or remove() to supersede
  // every version that read returned. An empty context makes a blind write, which never
  // destroys a concurrent version: it becomes a sibling.
 public:
  Context() = default;
  explicit Context(std::string bytes) : bytes_(std::move(bytes)) {}

  static Context fromToken(std::string_view token);
  // Parses token(). Throws Error(INVALID_ARGUMENT) if it is not one.

  std::string token() const;
  // A printable form (base64url) for command lines and scripts; "" for an empty context.

  bool empty() const { return bytes_.empty(); }
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

struct DYNKV_EXPORT GetResult {
  std::vector<Version> siblings;  // every concurrent version, deletions included; empty if none
  Context context;                // covers every version in `siblings`

  bool found() const;
  // True when at least one sibling is a live value (not a deletion).

  std::vector<std::string> values() const;
  // The live values, in sibling order.
};

struct CallOptions {
  // Per-call overrides of the client's defaults. r and w must not exceed n.
  std::optional<uint32_t> n;
  std::optional<uint32_t> r;
  std::optional<uint32_t> w;
  std::optional<std::chrono::milliseconds> timeout;  // the whole call, retries included
};

enum class ErrorKind {
  INVALID_ARGUMENT,  // the call itself is wrong (a limit, a bad context, r > n); retrying won't help
  UNAVAILABLE,       // too few replicas answered; failedReplicas() says which and why
  TIMEOUT,           // the deadline passed before the quorum was reached
  REJECTED,          // a replica refused the write (e.g. its storage is full); nothing was acked
};

DYNKV_EXPORT const char* toString(ErrorKind kind);

struct ReplicaFailure {
  std::string node;    // HOST:PORT
  std::string reason;  // what went wrong talking to it
};

class DYNKV_EXPORT Error : public std::runtime_error {
  // What a failed call reports. The blocking Client throws it; the kj API returns it in a
  // Result.
 public:
  Error(ErrorKind kind, std::string message, std::vector<ReplicaFailure> failures = {},
        uint32_t acks = 0, uint32_t required = 0);

  ErrorKind kind() const { return kind_; }
  const std::vector<ReplicaFailure>& failedReplicas() const { return failures_; }
  uint32_t acks() const { return acks_; }          // replicas that answered (or acked)
  uint32_t required() const { return required_; }  // how many were needed (R or W)

 private:
  ErrorKind kind_;
  std::vector<ReplicaFailure> failures_;
  uint32_t acks_;
  uint32_t required_;
};

template <typename T>
class Result {
  // A value or the Error that prevented it.
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  const T& value() const& { return ok() ? std::get<0>(v_) : throw std::get<1>(v_); }
  T& value() & { return ok() ? std::get<0>(v_) : throw std::get<1>(v_); }
  T&& value() && { return ok() ? std::move(std::get<0>(v_)) : throw std::get<1>(v_); }
  const Error& error() const { return std::get<1>(v_); }  // only when !ok()

 private:
  std::variant<T, Error> v_;
};

using Resolver = std::function<std::string(const std::vector<Version>& siblings)>;
// Semantic reconciliation (the paper's §4.4): merges concurrent versions into one value,
// e.g. the union of shopping carts. It sees deletions too (Version::deleted).

DYNKV_EXPORT std::optional<std::string> lastWriteWins(const std::vector<Version>& siblings);
// The built-in resolver: the version with the latest timestamp (ties broken by value), or
// nullopt if that version is a deletion or there are none.

DYNKV_EXPORT std::optional<std::string> resolve(const GetResult& result, const Resolver& resolver);
// nullopt if the key has no live version; the single live value if there is exactly one and
// no deletion beside it; otherwise resolver(result.siblings).

struct ClientOptions {
  std::vector<std::string> seeds;  // HOST:PORT of one or more nodes; the rest is learned
  std::string cluster = "dynkv";   // must match the nodes' cluster name
  std::string secret;              // the cluster's shared secret, if it has one
  // Mutual TLS: the cluster CA's certificate, this client's certificate (common name
  // client:NAME, or admin:NAME) and its private key, PEM files as `dynkv admin certs` writes
  // them. All three, or none for plain TCP (a node with TLS refuses it). A file that cannot be
  // read makes the client's creation fail, naming the file.
  std::string tlsCa;
  std::string tlsCert;
  std::string tlsKey;
  uint32_t n = 3;                  // replicas per key
  uint32_t r = 2;                  // replies a get waits for
  uint32_t w = 2;                  // acks a put waits for
  std::chrono::milliseconds timeout{2000};
  std::map<std::string, NamespaceKind> namespaces;  // unlisted namespaces are VECTOR_CLOCK
};

struct RingNode {
  uint64_t id = 0;
  std::string name;
  std::string address;
  std::string zone;
  uint32_t weight = 1;
  uint32_t partitions = 0;  // ring partitions it owns
  double share = 0;         // partitions / Q
};

struct RingInfo {
  uint64_t version = 0;     // partition-map version
  uint32_t partitions = 0;  // Q
  std::vector<RingNode> nodes;
};

}  // namespace dynkv
