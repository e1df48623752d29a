// The certificate-to-member check for raft streams (see peer_cert.h).
#include "tls/peer_cert.h"

#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace ckv::tls {

namespace {

bool is_ip_literal(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string common_name(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

std::string san_list(X509* cert) {
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return "none";
  std::string out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
    std::string one;
    if (g->type == GEN_DNS) {
      const ASN1_STRING* s = g->d.dNSName;
      one = "DNS:" + std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                 static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (g->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = g->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = "?";
      if (ASN1_STRING_length(ip) == 4) inet_ntop(AF_INET, ASN1_STRING_get0_data(ip), text, sizeof text);
      if (ASN1_STRING_length(ip) == 16) inet_ntop(AF_INET6, ASN1_STRING_get0_data(ip), text, sizeof text);
      one = std::string("IP:") + text;
    } else {
      continue;
    }
    if (!out.empty()) out += ", ";
    out += one;
  }
  GENERAL_NAMES_free(names);
  return out.empty() ? "none" : out;
}

}  // namespace

std::string describe_certificate(X509* cert) {
  if (cert == nullptr) return "no certificate";
  return "CN=" + common_name(cert) + ", SAN " + san_list(cert);
}

Status check_peer_certificate(X509* cert, const std::string& host, const std::string& allowed_cn) {
  if (cert == nullptr) return Status(StatusCode::kInvalid, "no peer certificate");
  if (!allowed_cn.empty() && common_name(cert) != allowed_cn) {
    return Status(StatusCode::kInvalid, "its certificate (" + describe_certificate(cert) +
                                            ") does not have the CN -peer-cert-allowed-cn requires (" +
                                            allowed_cn + ")");
  }
  // SANs only, never the CN: a CN that happens to look like a host name
  // must not make a certificate a member's.
  const bool match =
      is_ip_literal(host)
          ? X509_check_ip_asc(cert, host.c_str(), 0) == 1
          : X509_check_host(cert, host.data(), host.size(),
                            X509_CHECK_FLAG_NEVER_CHECK_SUBJECT | X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS,
                            nullptr) == 1;
  ERR_clear_error();
  if (!match) {
    return Status(StatusCode::kInvalid, "its certificate (" + describe_certificate(cert) +
                                            ") does not name host " + host);
  }
  return Status::ok();
}

}  // namespace ckv::tls
