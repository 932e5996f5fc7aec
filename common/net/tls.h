// Mutual TLS on every link (DESIGN.md, "Wire protocol and security"): a node, a client and an
// admin each present a certificate from the cluster's CA and trust that CA alone. Both sides of
// a connection use the same TlsContext: storaged's accept loop wraps the streams it accepts
// (accept-loop.h, AcceptOptions::tls), and NodePool the streams it connects (node-pool.h).
//
// Names: a certificate's common name says its role (roles.h: `node:NAME`, `client:NAME`,
// `admin:NAME`); a node's certificate also carries NODE_SERVER_NAME as a DNS name, which every
// caller checks, so that a client's or admin's certificate cannot pose as a node. Nodes are
// reached by IP address and port, which no certificate needs to name.
#pragma once

#include <kj/compat/tls.h>
#include <string>

namespace dynkv {

constexpr const char* NODE_SERVER_NAME = "node.dynkv";

struct TlsFiles {
  std::string ca;           // the cluster CA's certificate (PEM): the only one trusted
  std::string certificate;  // this process's certificate (PEM), issued by that CA
  std::string key;          // its private key (PEM, unencrypted)
  bool any() const { return !ca.empty() || !certificate.empty() || !key.empty(); }
};

class Tls {
  // The TLS context of a process, with the certificates it was made from.
 public:
  explicit Tls(const TlsFiles& files);
  // Reads the three files. Throws a kj::Exception naming the file and what is wrong with it
  // ("cannot read the CA certificate /x/ca.pem: not a PEM certificate"), never its contents.
  KJ_DISALLOW_COPY(Tls);

  kj::TlsContext& context() { return *context_; }

 private:
  kj::Array<kj::TlsCertificate> trusted_;
  kj::Own<kj::TlsKeypair> keypair_;
  kj::Own<kj::TlsContext> context_;
};

kj::Maybe<kj::String> certificateName(kj::PeerIdentity& identity);
// The common name of the certificate a TLS peer presented (TlsContext::wrapServer's identity);
// null when it presented none.

}  // namespace dynkv
