#include <catch2/catch.hpp>

#include "roles.h"

using dynkv::Role;
using dynkv::roleOf;

TEST_CASE("a certificate's common name says its role", "[roles]") {
  CHECK(roleOf("client:app") == Role::CLIENT);
  CHECK(roleOf("node:n1") == Role::NODE);
  CHECK(roleOf("admin:alice") == Role::ADMIN);
  CHECK(roleOf("node:127.0.0.1:7401") == Role::NODE);  // the name may hold colons itself
}

TEST_CASE("a name that is no role is granted nothing", "[roles]") {
  CHECK(roleOf("") == Role::NONE);
  CHECK(roleOf("node") == Role::NONE);          // no colon
  CHECK(roleOf("node:") == Role::NONE);         // no name
  CHECK(roleOf("Node:n1") == Role::NONE);       // case matters
  CHECK(roleOf("root:n1") == Role::NONE);
  CHECK(roleOf(":admin") == Role::NONE);
  CHECK(roleOf("adminx:alice") == Role::NONE);  // a prefix of a role is not the role
  auto none = dynkv::grantsOf(Role::NONE);
  CHECK_FALSE(none.node);
  CHECK_FALSE(none.peer);
  CHECK_FALSE(none.admin);
}

TEST_CASE("each role is granted its capabilities and no others", "[roles]") {
  auto client = dynkv::grantsOf(Role::CLIENT);
  CHECK(client.node);
  CHECK_FALSE(client.peer);  // no gossip, transfer or anti-entropy from an application
  CHECK_FALSE(client.admin);
  auto node = dynkv::grantsOf(Role::NODE);
  CHECK(node.node);
  CHECK(node.peer);
  CHECK_FALSE(node.admin);  // membership changes come from an admin, never a node
  auto admin = dynkv::grantsOf(Role::ADMIN);
  CHECK(admin.node);
  CHECK_FALSE(admin.peer);
  CHECK(admin.admin);
  CHECK(std::string(dynkv::roleName(Role::ADMIN)) == "admin");
  CHECK(std::string(dynkv::roleName(Role::NONE)) == "none");
}
