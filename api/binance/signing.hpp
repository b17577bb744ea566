#pragma once
/// @file Request signing for Binance's SIGNED endpoints: the payload is the percent-encoded `key=value&...` string
/// (query string, then the body, with no separator between them), signed with HMAC-SHA256 (hex) or Ed25519 (base64,
/// then percent-encoded as a parameter value). docs/EXCHANGE.md quotes the documentation's worked examples that
/// tests/api/binance_signing_test.cpp reproduces byte for byte.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qtos::binance {

/// Request parameters in the order they are sent (the signature covers this exact order).
using Params = std::vector<std::pair<std::string, std::string>>;

/// RFC 3986 percent-encoding of one key or value: unreserved characters (A-Z a-z 0-9 - _ . ~) stay, every other byte
/// (UTF-8 of non-ASCII characters included) becomes %XX with upper-case hex.
std::string percent_encode(std::string_view text);

/// `k1=v1&k2=v2...` with every key and value percent-encoded: the signature payload and the wire form alike.
std::string query_encode(const Params& params);

/// The WebSocket API's signature payload: the params sorted by name, `key=value` joined by `&`, values as UTF-8 text
/// (not percent-encoded: a JSON request carries them as they are).
std::string ws_api_payload(Params params);

/// Lower-case hex HMAC-SHA256 of `payload` under `secret`.
std::string hmac_sha256_hex(std::string_view secret, std::string_view payload);

/// Standard base64 (with padding) of `bytes`.
std::string base64_encode(std::string_view bytes);

/// Signs payloads for one API key: HMAC (the secret key) or Ed25519 (a PEM private key). Holds key material; never
/// prints it (no operator<<, no accessor).
class Signer {
 public:
  /// An HMAC-SHA256 signer; throws std::invalid_argument when `secret` is empty.
  static Signer hmac(std::string secret);
  /// An Ed25519 signer from a PEM private key (PKCS#8, unencrypted); throws std::invalid_argument when the text is not
  /// an Ed25519 private key.
  static Signer ed25519_pem(const std::string& pem);
  ~Signer();
  Signer(Signer&&) noexcept;
  Signer& operator=(Signer&&) noexcept;
  Signer(const Signer&) = delete;
  Signer& operator=(const Signer&) = delete;

  /// The `signature` parameter's value for `payload` (before the parameter itself is percent-encoded): HMAC hex, or
  /// Ed25519 base64.
  std::string sign(std::string_view payload) const;
  /// True for Ed25519 (the signature is then case-sensitive and needs percent-encoding on the wire).
  bool is_ed25519() const { return pkey_ != nullptr; }

 private:
  Signer() = default;
  std::string secret_;
  struct PkeyFree {
    void operator()(void* p) const;
  };
  std::unique_ptr<void, PkeyFree> pkey_;
};

/// The signed request string: `query_encode(params) + "&signature=" + percent_encode(signer.sign(payload))` where the
/// payload is `query_encode(params)` (all parameters go in the query string, so nothing sits in the body).
std::string signed_query(const Params& params, const Signer& signer);

}  // namespace qtos::binance
