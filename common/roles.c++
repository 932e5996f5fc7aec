#include "roles.h"

namespace dynkv {

Role roleOf(std::string_view commonName) {
  auto colon = commonName.find(':');
  if (colon == std::string_view::npos || colon + 1 == commonName.size()) return Role::NONE;
  auto prefix = commonName.substr(0, colon);
  if (prefix == "client") return Role::CLIENT;
  if (prefix == "node") return Role::NODE;
  if (prefix == "admin") return Role::ADMIN;
  return Role::NONE;
}

Grants grantsOf(Role role) {
  switch (role) {
    case Role::CLIENT:
      return {true, false, false};
    case Role::NODE:
      return {true, true, false};
    case Role::ADMIN:
      return {true, false, true};
    case Role::NONE:
      break;
  }
  return {};
}

const char* roleName(Role role) {
  switch (role) {
    case Role::CLIENT:
      return "client";
    case Role::NODE:
      return "node";
    case Role::ADMIN:
      return "admin";
    case Role::NONE:
      break;
  }
  return "none";
}

}  // namespace dynkv
