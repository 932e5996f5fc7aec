// A membership that always answers with the map it was given: for storaged's services hosted
// in one process, where the test decides the ring and nothing gossips.
#pragma once

#include "membership.h"

namespace dynkv::storaged {

class FixedMembership final : public Membership {
 public:
  explicit FixedMembership(MapSnapshot map) : map_(kj::mv(map)) {}
  MapSnapshot current() const override { return map_; }
  void observeVersion(uint64_t) override {}

 private:
  MapSnapshot map_;
};

}  // namespace dynkv::storaged
