// Binance request signing against the worked examples of the official documentation, byte for byte: the spot REST
// HMAC examples (ASCII and non-ASCII symbol, percent-encoded payload), the USD-M examples (query string, body, mixed),
// the WebSocket API examples (params sorted, UTF-8 kept), and the percent-encoding of the documentation's Ed25519
// signatures; Ed25519 signing itself against RFC 8032.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "api/binance/signing.hpp"

namespace qtos::binance {
namespace binance_signing_test {

constexpr const char* kSpotSecret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
constexpr const char* kFuturesSecret = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9";

TEST(BinanceSigning, SpotHmacAsciiExample) {
  const Params p{{"symbol", "LTCBTC"}, {"side", "BUY"}, {"type", "LIMIT"}, {"timeInForce", "GTC"}, {"quantity", "1"},
                 {"price", "0.1"}, {"recvWindow", "5000"}, {"timestamp", "1499827319559"}};
  const std::string payload = query_encode(p);
  EXPECT_EQ(payload, "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559");
  EXPECT_EQ(hmac_sha256_hex(kSpotSecret, payload), "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
  EXPECT_EQ(signed_query(p, Signer::hmac(kSpotSecret)),
            payload + "&signature=c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71");
}

TEST(BinanceSigning, SpotHmacNonAsciiExampleIsPercentEncodedBeforeSigning) {
  // The symbol is six full-width digits (U+FF11..U+FF16) in UTF-8.
  const Params p{{"symbol", "\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93\xEF\xBC\x94\xEF\xBC\x95\xEF\xBC\x96"},
                 {"side", "BUY"}, {"type", "LIMIT"}, {"timeInForce", "GTC"}, {"quantity", "1"}, {"price", "0.1"},
                 {"recvWindow", "5000"}, {"timestamp", "1499827319559"}};
  const std::string payload = query_encode(p);
  EXPECT_EQ(payload,
            "symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&"
            "recvWindow=5000&timestamp=1499827319559");
  EXPECT_EQ(Signer::hmac(kSpotSecret).sign(payload), "e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3");
}

TEST(BinanceSigning, FuturesHmacQueryStringAndBodyExamples) {
  // Examples 1 and 2 sign the same payload (all parameters in the query string, or all in the body).
  const Params p{{"symbol", "BTCUSDT"}, {"side", "BUY"}, {"type", "LIMIT"}, {"quantity", "1"}, {"price", "9000"},
                 {"timeInForce", "GTC"}, {"recvWindow", "5000"}, {"timestamp", "1591702613943"}};
  EXPECT_EQ(hmac_sha256_hex(kFuturesSecret, query_encode(p)), "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9");
}

TEST(BinanceSigning, FuturesHmacMixedExampleConcatenatesQueryAndBodyWithoutSeparator) {
  // Example 3: query string then body, no '&' between them. The documentation's command line has a space after
  // "timestamp=" and its published signature is of that exact text; the test signs the same bytes.
  const std::string query = query_encode({{"symbol", "BTCUSDT"}, {"side", "BUY"}, {"type", "LIMIT"}, {"timeInForce", "GTC"}});
  const std::string body = "quantity=1&price=9000&recvWindow=5000&timestamp= 1591702613943";
  EXPECT_EQ(hmac_sha256_hex(kFuturesSecret, query + body), "f9d0ae5e813ef6ccf15c2b5a434047a0181cb5a342b903b367ca6d27a66e36f2");
}

TEST(BinanceSigning, WebSocketApiHmacExamplesSortParamsAndKeepUtf8) {
  const std::string key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
  std::string payload = ws_api_payload({{"symbol", "BTCUSDT"}, {"side", "SELL"}, {"type", "LIMIT"}, {"timeInForce", "GTC"},
                                        {"quantity", "0.01000000"}, {"price", "52000.00"}, {"recvWindow", "100"},
                                        {"timestamp", "1645423376532"}, {"apiKey", key}});
  EXPECT_EQ(payload, "apiKey=" + key +
                         "&price=52000.00&quantity=0.01000000&recvWindow=100&side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532"
                         "&type=LIMIT");
  EXPECT_EQ(hmac_sha256_hex(kSpotSecret, payload), "aa1b5712c094bc4e57c05a1a5c1fd8d88dcd628338ea863fec7b88e59fe2db24");
  payload = ws_api_payload({{"symbol", "\xEF\xBC\x91\xEF\xBC\x92\xEF\xBC\x93\xEF\xBC\x94\xEF\xBC\x95\xEF\xBC\x96"}, {"side", "BUY"},
                            {"type", "LIMIT"}, {"timeInForce", "GTC"}, {"quantity", "1.00000000"}, {"price", "0.10000000"},
                            {"recvWindow", "5000"}, {"timestamp", "1645423376532"}, {"apiKey", key}});
  EXPECT_EQ(hmac_sha256_hex(kSpotSecret, payload), "b33892ae8e687c939f4468c6268ddd4c40ac1af18ad19a064864c47bae0752cd");
}

TEST(BinanceSigning, Ed25519SignaturesArePercentEncodedAsTheDocumentationShows) {
  // Step 3 of the spot Ed25519 example: the base64 signature percent-encoded as a parameter value.
  EXPECT_EQ(percent_encode("HaZnek7KOGa/k5+f6Q1nw8lzMUpo36mRVvvLHCMUCXxlmdQQGZge1luAUKnleD/DYeD19YrqzeHbb6xU3MkSIXKhAO1MaYq48uGVYb3vJScEZVOutgMIn"
                           "rZzUcCWNulNkfcbmExSiymCZ5xQBw5QDuzpuDFqRZ1Xt+BZxEHBN9OYQKpoe0+ovjnXyVOaH8VUKhE/ghUWnThrXJr+hmSc5t7ggjiVPQc7pGn3qSNGCQwd"
                           "pkQC9GHMr/r+8n6qeEKMYB5j/1wC4d8Jae8FQiU8xcXR0NlUgV2LAw61/ZJv5BTJpa+z5Lv1W9v6jHQWRX2O8uaG3KU/lR3spR7+oGlWOw="),
            "HaZnek7KOGa%2Fk5%2Bf6Q1nw8lzMUpo36mRVvvLHCMUCXxlmdQQGZge1luAUKnleD%2FDYeD19YrqzeHbb6xU3MkSIXKhAO1MaYq48uGVYb3vJScEZVOutgMIn"
            "rZzUcCWNulNkfcbmExSiymCZ5xQBw5QDuzpuDFqRZ1Xt%2BBZxEHBN9OYQKpoe0%2BovjnXyVOaH8VUKhE%2FghUWnThrXJr%2BhmSc5t7ggjiVPQc7pGn3qSNG"
            "CQwdpkQC9GHMr%2Fr%2B8n6qeEKMYB5j%2F1wC4d8Jae8FQiU8xcXR0NlUgV2LAw61%2FZJv5BTJpa%2Bz5Lv1W9v6jHQWRX2O8uaG3KU%2FlR3spR7%2BoGlWOw%3D");
  EXPECT_EQ(percent_encode("a+b/c=="), "a%2Bb%2Fc%3D%3D");
  EXPECT_EQ(percent_encode("AZaz09-_.~"), "AZaz09-_.~");
  EXPECT_EQ(percent_encode("[\"BTCUSDT\",\"BNBBTC\"]"), "%5B%22BTCUSDT%22%2C%22BNBBTC%22%5D");
}

TEST(BinanceSigning, Ed25519MatchesRfc8032TestVector) {
  // RFC 8032 section 7.1, TEST 1 (empty message), the private key as PKCS#8 PEM.
  const std::string pem =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
      "-----END PRIVATE KEY-----\n";
  const Signer s = Signer::ed25519_pem(pem);
  EXPECT_TRUE(s.is_ed25519());
  EXPECT_EQ(s.sign(""), base64_encode(std::string(
                            "\xe5\x56\x43\x00\xc3\x60\xac\x72\x90\x86\xe2\xcc\x80\x6e\x82\x8a\x84\x87\x7f\x1e\xb8\xe5\xd9\x74\xd8\x73\xe0\x65"
                            "\x22\x49\x01\x55\x5f\xb8\x82\x15\x90\xa3\x3b\xac\xc6\x1e\x39\x70\x1c\xf9\xb4\x6b\xd2\x5b\xf5\xf0\x59\x5b\xbe\x24"
                            "\x65\x51\x41\x43\x8e\x7a\x10\x0b",
                            64)));
}

TEST(BinanceSigning, BadKeysAreRefusedWithTheirName) {
  EXPECT_THROW(Signer::hmac(""), std::invalid_argument);
  try {
    (void)Signer::ed25519_pem("not a key");
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("Binance private key"), std::string::npos);
  }
}

}  // namespace binance_signing_test
}  // namespace qtos::binance
