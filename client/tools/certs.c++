// `dynkv admin certs`: a cluster CA and the certificates its nodes, clients and admins present
// (net/tls.h, roles.h), with OpenSSL's own API so that no openssl binary is needed.
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>

#include "admin.h"

namespace dynkv {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Free>;
using Certificate = std::unique_ptr<X509, Free>;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

Key newKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) fail("cannot create an ECDSA P-256 key (OpenSSL)");
  return key;
}

void addExtension(X509* certificate, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, certificate, nullptr, nullptr, 0);
  std::unique_ptr<X509_EXTENSION, Free> extension(
      X509V3_EXT_conf_nid(nullptr, &context, nid, value));
  if (!extension || X509_add_ext(certificate, extension.get(), -1) != 1) {
    fail(std::string("cannot add the certificate extension ") + OBJ_nid2sn(nid));
  }
}

Certificate issue(EVP_PKEY* key, const std::string& commonName, X509* issuer,
                  EVP_PKEY* issuerKey, uint32_t days, const char* dnsName) {
  // issuer null: the CA's own, self-signed certificate.
  Certificate certificate(X509_new());
  X509* x = certificate.get();
  X509_set_version(x, 2);
  std::unique_ptr<BIGNUM, Free> serial(BN_new());
  BN_rand(serial.get(), 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
  BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x));
  // An hour back, so that a clock a little behind the issuer's accepts it at once.
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), long(days) * 24 * 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("dynkv"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1,
                             0);
  X509* signer = issuer != nullptr ? issuer : x;
  X509_set_issuer_name(x, X509_get_subject_name(signer));
  addExtension(x, signer, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    addExtension(x, signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0");
    addExtension(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    addExtension(x, signer, NID_authority_key_identifier, "keyid:always");
    addExtension(x, signer, NID_basic_constraints, "critical,CA:FALSE");
    addExtension(x, signer, NID_key_usage, "critical,digitalSignature");
    // Nodes are servers to their callers and clients of their peers; clients and admins
    // only ever connect.
    addExtension(x, signer, NID_ext_key_usage,
                 dnsName != nullptr ? "serverAuth,clientAuth" : "clientAuth");
    if (dnsName != nullptr) {
      addExtension(x, signer, NID_subject_alt_name, (std::string("DNS:") + dnsName).c_str());
    }
  }
  if (X509_sign(x, issuerKey != nullptr ? issuerKey : key, EVP_sha256()) == 0) {
    fail("cannot sign the certificate for " + commonName);
  }
  return certificate;
}

void writeFile(const std::filesystem::path& path, const std::string& bytes, mode_t mode) {
  // Created with its final mode, so that a key is never readable by others, not even briefly.
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) fail("cannot write " + path.string() + ": " + strerror(errno));
  fchmod(fd, mode);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = errno;
      close(fd);
      fail("cannot write " + path.string() + ": " + strerror(error));
    }
    done += size_t(n);
  }
  if (close(fd) != 0) fail("cannot write " + path.string() + ": " + strerror(errno));
}

std::string pemOf(X509* certificate) {
  std::unique_ptr<BIO, Free> out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), certificate);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, size_t(size));
}

std::string pemOf(EVP_PKEY* key) {
  std::unique_ptr<BIO, Free> out(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(out.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(out.get(), &data);
  return std::string(data, size_t(size));
}

std::unique_ptr<BIO, Free> openForReading(const std::filesystem::path& path, const char* what) {
  std::unique_ptr<BIO, Free> in(BIO_new_file(path.c_str(), "r"));
  if (!in) fail(std::string("cannot read the ") + what + " " + path.string() + ": " +
                strerror(errno));
  return in;
}

}  // namespace

void writeCertificates(const std::string& dirName, const std::vector<std::string>& nodes,
                       const std::string& client, const std::string& admin, uint32_t days) {
  namespace fs = std::filesystem;
  fs::path dir(dirName);
  std::error_code error;
  fs::create_directories(dir, error);
  if (error) fail("cannot create " + dir.string() + ": " + error.message());
  fs::permissions(dir, fs::perms::owner_all, error);

  // A CA already there is used, not replaced: the certificates it issued stay valid, and `dynkv
  // local up` can run this on every start.
  Key caKey;
  Certificate ca;
  if (fs::exists(dir / "ca.key") || fs::exists(dir / "ca.pem")) {
    auto keyIn = openForReading(dir / "ca.key", "CA key");
    caKey.reset(PEM_read_bio_PrivateKey(keyIn.get(), nullptr, nullptr, nullptr));
    if (!caKey) fail("cannot read the CA key " + (dir / "ca.key").string() + ": not a PEM key");
    auto certIn = openForReading(dir / "ca.pem", "CA certificate");
    ca.reset(PEM_read_bio_X509(certIn.get(), nullptr, nullptr, nullptr));
    if (!ca) {
      fail("cannot read the CA certificate " + (dir / "ca.pem").string() +
           ": not a PEM certificate");
    }
  } else {
    caKey = newKey();
    ca = issue(caKey.get(), "dynkv cluster CA", nullptr, nullptr, days, nullptr);
    writeFile(dir / "ca.key", pemOf(caKey.get()), 0600);
    writeFile(dir / "ca.pem", pemOf(ca.get()), 0644);
  }

  auto leaf = [&](const std::string& file, const std::string& commonName, const char* dns) {
    if (fs::exists(dir / (file + ".pem")) && fs::exists(dir / (file + ".key"))) return;
    auto key = newKey();
    auto certificate = issue(key.get(), commonName, ca.get(), caKey.get(), days, dns);
    writeFile(dir / (file + ".key"), pemOf(key.get()), 0600);
    writeFile(dir / (file + ".pem"), pemOf(certificate.get()), 0644);
  };
  for (auto& node : nodes) leaf("node-" + node, "node:" + node, NODE_SERVER_NAME);
  if (!client.empty()) leaf("client", "client:" + client, nullptr);
  if (!admin.empty()) leaf("admin", "admin:" + admin, nullptr);
}

}  // namespace dynkv
