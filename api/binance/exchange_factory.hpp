#pragma once
/// @file The exchange a configuration asks for (QT_EXCHANGE, QT_BINANCE_ENV): the paper exchange, or the Binance
/// connector with its keys loaded and every start-up safety check done (docs/EXCHANGE.md "Safety").

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/binance/binance_exchange.hpp"
#include "runtime/config/config.hpp"
#include "runtime/exchange/paper_exchange.hpp"

namespace qtos::binance {

/// API keys as loaded (never logged; the secret is wiped with the object).
struct ApiKeys {
  std::string api_key;      ///< X-MBX-APIKEY
  std::string secret;       ///< HMAC secret ("" with an Ed25519 key)
  std::string private_pem;  ///< Ed25519 private key, PEM ("" with an HMAC secret)
  Env env = Env::testnet;   ///< where the key was created
  ~ApiKeys();
};

/// Loads the keys: QT_BINANCE_KEY_FILE (lines `api_key=`, `api_secret=` or `private_key_file=`, and `env=`; the file,
/// and a private key file it names, must belong to this user and be readable by nobody else: mode 0600 or 0400), or
/// QT_BINANCE_API_KEY + QT_BINANCE_API_SECRET + QT_BINANCE_KEY_ENV. Throws ConfigError naming the variable or file.
ApiKeys api_keys_load(const Config& config);

/// The REST base URL of a venue: spot or USD-M, testnet or mainnet.
std::string rest_url(MarketKind market, Env env);

/// What the caller adds to the configuration.
struct ExchangeFactoryOptions {
  PaperExchangeConfig paper;          ///< QT_EXCHANGE=paper: the paper venue
  Clock* clock = nullptr;             ///< the paper venue's clock (required for paper)
  std::optional<HttpEndpoint> rest;   ///< tests: a loopback fake instead of Binance's URL
  std::string client_prefix = "qt";   ///< newClientOrderId prefix: make it unique per deployment (a run tag)
  double leverage = 1;                ///< USD-M leverage per symbol
  std::function<void(const std::string&)> health_alert;  ///< 418 bans and other alarms
};

/// The exchange `config` names. Binance: keys loaded (api_keys_load), a key of one environment with the other's URL
/// refused, AUTONOMY refused on mainnet; the connector is built but not started (call start(): trading stays HALTED
/// until it has reconciled). Throws ConfigError naming the variable for every refusal.
std::unique_ptr<Exchange> make_exchange(const Config& config, const ExchangeFactoryOptions& options);

}  // namespace qtos::binance
