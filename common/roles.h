// Who may call what, decided from the name a peer's TLS certificate carries (DESIGN.md, "Wire
// protocol and security"). Pure: the accept loop reads the certificate's common name, this
// decides the role, and the Gateway hands out the capabilities the role is granted; a method a
// role may not call is not reachable from what it holds.
//
// The common name is `ROLE:NAME`, ROLE one of `client`, `node`, `admin` and NAME not empty
// (`node:n1`, `client:app`, `admin:alice`); `dynkv admin certs` issues such certificates.
#pragma once

#include <string_view>

namespace dynkv {

enum class Role {
  NONE,    // no certificate, or a name that is none of the roles: granted nothing
  CLIENT,  // an application through the SDK: reads and writes
  NODE,    // a storage node: reads and writes, and node-to-node calls
  ADMIN,   // an operator: reads and writes, and the admin calls
};

Role roleOf(std::string_view commonName);
// The role the name says; NONE for anything else (an unknown prefix, an empty NAME, no colon).
// Case matters: `Node:n1` is NONE.

struct Grants {
  // The capabilities Gateway.authenticate hands out.
  bool node = false;   // Node: get, coordinatePut, replicate, getView, ping, server-driven calls.
                       // The SDK coordinates writes itself and replicates to the other
                       // replicas, so a client needs all of it.
  bool peer = false;   // Peer: gossip, partition transfer, anti-entropy: nodes only
  bool admin = false;  // Admin: join, leave, remove, repair, snapshot, status, inspect
};

Grants grantsOf(Role role);
// CLIENT: node; NODE: node and peer; ADMIN: node and admin; NONE: nothing.

const char* roleName(Role role);
// "client", "node", "admin", or "none": for logs and refusals.

}  // namespace dynkv
