// The object codec's bounds: what checkStorable accepts is exactly what decodeObject reads back.
#include <catch2/catch.hpp>

#include "codec.h"

namespace dynkv {
namespace {

bool decodes(const Object& object, const Limits& limits) {
  auto words = objectToWords(object);
  try {
    objectFromBytes(words.asBytes(), limits);
    return true;
  } catch (const kj::Exception&) {
    return false;
  }
}

Object withEntries(size_t entries) {
  Object object;
  for (uint64_t i = 0; i < entries; i++) object.vv.set(Actor{i + 1, 1}, 1, 10);
  object.siblings.push_back(Sibling{Dot{Actor{1, 1}, 1}, 10, std::string("v")});
  return object;
}

Object withSiblings(size_t siblings) {
  Object object;
  for (uint64_t i = 1; i <= siblings; i++) {
    object.siblings.push_back(Sibling{Dot{Actor{1, 1}, i}, 10, std::string("v")});
  }
  object.vv.set(Actor{1, 1}, siblings, 10);
  return object;
}

TEST_CASE("codec: checkStorable refuses, naming the limit, exactly what the decoder refuses") {
  Limits limits;
  limits.maxValueBytes = 8;
  for (size_t n : {MAX_DECODED_VV_ENTRIES, MAX_DECODED_VV_ENTRIES + 1}) {
    auto object = withEntries(n);
    CHECK(checkStorable(object, limits).has_value() == !decodes(object, limits));
  }
  CHECK(*checkStorable(withEntries(41), limits) ==
        "invalid argument: the object has 41 version-vector entries; the limit is 40");
  for (size_t n : {size_t(Limits::MAX_SIBLINGS), size_t(Limits::MAX_SIBLINGS) + 1}) {
    auto object = withSiblings(n);
    CHECK(checkStorable(object, limits).has_value() == !decodes(object, limits));
  }
  CHECK_THAT(*checkStorable(withSiblings(65), limits),
             Catch::StartsWith("invalid argument: the object has 65 siblings; the limit is 64"));
  auto big = withEntries(1);
  big.siblings[0].value = std::string(9, 'x');
  CHECK_FALSE(decodes(big, limits));
  CHECK_THAT(*checkStorable(big, limits), Catch::Contains("9 bytes; the limit is 8"));
}

}  // namespace
}  // namespace dynkv
