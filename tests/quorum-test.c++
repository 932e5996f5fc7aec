// The client's quorum state machines, fed replies and failures directly.
#include <catch2/catch.hpp>

#include "quorum.h"

namespace dynkv {
namespace {

Object versionAt(uint64_t node, const char* value) {
  return coordinatePut(Object{}, Actor{node, 1}, {}, std::string(value), int64_t(node));
}

TEST_CASE("read quorum: succeeds at R answers with the sync of them") {
  ReadQuorum q(2, 3);
  auto a = versionAt(1, "a"), b = versionAt(2, "b");
  q.answered(0, a);
  CHECK_FALSE(q.succeeded());
  q.answered(2, b);
  CHECK(q.succeeded());
  CHECK(q.merged() == sync(a, b));
  CHECK_FALSE(q.settled());
}

TEST_CASE("read quorum: fails for good once R answers can no longer come") {
  ReadQuorum q(2, 3);
  q.failed(0, "refused", false);
  CHECK_FALSE(q.failedForGood());
  q.failed(1, "timeout", false);
  CHECK(q.failedForGood());
  // A fallback joining revives it.
  size_t extra = q.addReplica();
  CHECK_FALSE(q.failedForGood());
  q.answered(2, std::nullopt);
  q.answered(extra, std::nullopt);
  CHECK(q.succeeded());
  CHECK(q.merged().empty());
}

TEST_CASE("read quorum: stale replicas are those whose copy differs from the merge") {
  ReadQuorum q(2, 3);
  auto a = versionAt(1, "a");
  auto ab = sync(a, versionAt(2, "b"));
  q.answered(0, ab);
  q.answered(1, a);
  q.answered(2, std::nullopt);
  CHECK(q.settled());
  CHECK(q.staleReplicas() == std::vector<size_t>{1, 2});
}

TEST_CASE("write quorum: W acks succeed and failures past N - W fail") {
  WriteQuorum q(2, 3);
  q.acked(0);
  q.failed(1, "down", false);
  CHECK_FALSE(q.succeeded());
  CHECK_FALSE(q.failedForGood());
  q.acked(2);
  CHECK(q.succeeded());

  WriteQuorum bad(2, 3);
  bad.failed(0, "down", false);
  bad.failed(1, "full", true);
  CHECK(bad.failedForGood());
  CHECK(bad.replicas()[1].refused);
}

}  // namespace
}  // namespace dynkv
