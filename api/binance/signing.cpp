#include "api/binance/signing.hpp"

#include <algorithm>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

namespace qtos::binance {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

}  // namespace

std::string percent_encode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (unreserved(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string query_encode(const Params& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += percent_encode(k);
    out.push_back('=');
    out += percent_encode(v);
  }
  return out;
}

std::string ws_api_payload(Params params) {
  std::stable_sort(params.begin(), params.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

std::string hmac_sha256_hex(std::string_view secret, std::string_view payload) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(payload.data()),
           payload.size(), mac, &len) == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed in OpenSSL");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * len, '0');
  for (unsigned int i = 0; i < len; ++i) {
    out[2 * i] = kHex[mac[i] >> 4];
    out[2 * i + 1] = kHex[mac[i] & 15];
  }
  return out;
}

std::string base64_encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

void Signer::PkeyFree::operator()(void* p) const { EVP_PKEY_free(static_cast<EVP_PKEY*>(p)); }

Signer::~Signer() {
  // The secret does not outlive the signer in freed memory.
  OPENSSL_cleanse(secret_.data(), secret_.size());
}
Signer::Signer(Signer&&) noexcept = default;
Signer& Signer::operator=(Signer&&) noexcept = default;

Signer Signer::hmac(std::string secret) {
  if (secret.empty()) throw std::invalid_argument("Binance API secret: empty (expected the secret key of the API key)");
  Signer s;
  s.secret_ = std::move(secret);
  return s;
}

Signer Signer::ed25519_pem(const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  EVP_PKEY* key = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (key == nullptr) throw std::invalid_argument("Binance private key: not a PEM private key (expected an unencrypted PKCS#8 Ed25519 key)");
  if (EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
    EVP_PKEY_free(key);
    throw std::invalid_argument("Binance private key: not an Ed25519 key (RSA keys are not supported; use HMAC or Ed25519)");
  }
  Signer s;
  s.pkey_.reset(key);
  return s;
}

std::string Signer::sign(std::string_view payload) const {
  if (!pkey_) return hmac_sha256_hex(secret_, payload);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char sig[64];
  std::size_t len = sizeof sig;
  // Ed25519 signs the message itself (no pre-hash): the digest argument is null.
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(pkey_.get())) != 1 ||
      EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) != 1)
    throw std::runtime_error("Ed25519 signing failed in OpenSSL");
  return base64_encode(std::string_view(reinterpret_cast<const char*>(sig), len));
}

std::string signed_query(const Params& params, const Signer& signer) {
  std::string q = query_encode(params);
  const std::string sig = signer.sign(q);
  q += "&signature=";
  q += percent_encode(sig);
  return q;
}

}  // namespace qtos::binance
