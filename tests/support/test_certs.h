// Test-only X.509 certificates made in memory with OpenSSL (CAs, members' certificates, PEM text), for the TLS unit tests.
#pragma once

#include <string>

#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "tls/openssl_ptr.h"

namespace ckv::tls::testing {

struct Identity {
  KeyPtr key;
  X509Ptr cert;
};

inline std::string pem_of(X509* x) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), x);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// password: written encrypted with it (AES-128-CBC) when given.
inline std::string pem_of(EVP_PKEY* k, const char* password = nullptr) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), k, password != nullptr ? EVP_aes_128_cbc() : nullptr, nullptr, 0,
                           nullptr, const_cast<char*>(password));
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

inline void add_extension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return;  // the certificate then lacks it, and the test using it fails
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// The SANs make_identity gives a member's certificate unless told otherwise.
inline constexpr char kLoopbackSans[] = "IP:127.0.0.1,DNS:localhost";

// A P-256 certificate with subject CN=cn, signed by issuer (self-signed when
// null), valid from now + not_before_s to now + not_after_s. A CA when ca;
// else a member's: SANs `sans` (OpenSSL's syntax; empty: none), serverAuth
// and clientAuth.
inline Identity make_identity(const char* cn, const Identity* issuer, bool ca,
                              long not_before_s = -60, long not_after_s = 3600,
                              const std::string& sans = kLoopbackSans) {
  Identity id{KeyPtr(EVP_EC_gen("P-256")), X509Ptr(X509_new())};
  X509* x = id.cert.get();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
  X509_gmtime_adj(X509_getm_notBefore(x), not_before_s);
  X509_gmtime_adj(X509_getm_notAfter(x), not_after_s);
  X509_set_pubkey(x, id.key.get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : x;
  X509_set_issuer_name(x, X509_get_subject_name(issuer_cert));
  if (ca) {
    add_extension(x, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    add_extension(x, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    if (!sans.empty()) add_extension(x, issuer_cert, NID_subject_alt_name, sans.c_str());
    add_extension(x, issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  X509_sign(x, issuer != nullptr ? issuer->key.get() : id.key.get(), EVP_sha256());
  return id;
}

}  // namespace ckv::tls::testing
