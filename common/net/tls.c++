#include "tls.h"

#include <kj/debug.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dynkv {

namespace {

[[noreturn]] void cannot(const char* what, const std::string& file, kj::StringPtr why) {
  // The message names the file and the problem; never the file's bytes, which for a key are
  // the secret itself (OpenSSL's own errors are left out for the same reason).
  kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                        kj::str("cannot read the ", what, " ", file, ": ", why)));
}

std::string readPem(const char* what, const std::string& file) {
  if (file.empty()) {
    kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                          kj::str("TLS needs the ", what, " file; none named")));
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) cannot(what, file, strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) cannot(what, file, strerror(errno));
  return text.str();
}

template <typename T>
T parsed(const char* what, const std::string& file, const char* kind) {
  auto pem = readPem(what, file);
  kj::Maybe<T> value;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions([&]() { value = T(kj::StringPtr(pem.c_str())); })) {
    cannot(what, file, kj::str("not a PEM ", kind));
  }
  return kj::mv(KJ_ASSERT_NONNULL(value));
}

}  // namespace

Tls::Tls(const TlsFiles& files) {
  auto ca = parsed<kj::TlsCertificate>("CA certificate", files.ca, "certificate");
  auto certificate =
      parsed<kj::TlsCertificate>("certificate", files.certificate, "certificate");
  auto key = parsed<kj::TlsPrivateKey>("private key", files.key, "private key");
  auto trusted = kj::heapArrayBuilder<kj::TlsCertificate>(1);
  trusted.add(kj::mv(ca));
  trusted_ = trusted.finish();
  keypair_ = kj::heap<kj::TlsKeypair>(kj::TlsKeypair{kj::mv(key), kj::mv(certificate)});

  kj::TlsContext::Options options;
  options.useSystemTrustStore = false;  // the cluster's CA and nothing else
  options.verifyClients = true;         // mutual: a caller without a certificate is refused
  options.trustedCertificates = trusted_;
  options.defaultKeypair = *keypair_;
  KJ_IF_MAYBE(e, kj::runCatchingExceptions(
                     [&]() { context_ = kj::heap<kj::TlsContext>(kj::mv(options)); })) {
    kj::throwFatalException(kj::Exception(
        kj::Exception::Type::FAILED, __FILE__, __LINE__,
        kj::str("cannot use the private key ", files.key, " with the certificate ",
                files.certificate, ": they do not belong together")));
  }
}

kj::Maybe<kj::String> certificateName(kj::PeerIdentity& identity) {
  auto tls = dynamic_cast<kj::TlsPeerIdentity*>(&identity);
  if (tls == nullptr || !tls->hasCertificate()) return nullptr;
  return tls->getCommonName();
}

}  // namespace dynkv
