#include "api/binance/exchange_factory.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include <openssl/crypto.h>

namespace qtos::binance {

namespace {

std::string trim(const std::string& s) {
  const auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return {};
  const auto b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

// A secret file: ours, a regular file, and nobody else may read or write it.
std::string private_file_read(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ConfigError(what + " '" + path + "': cannot be read (no such file?)");
  if (!S_ISREG(st.st_mode)) throw ConfigError(what + " '" + path + "': not a regular file");
  if (st.st_uid != ::geteuid()) throw ConfigError(what + " '" + path + "': belongs to another user (expected the user running qtos)");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw ConfigError(what + " '" + path + "': mode " + mode + " lets others read it (expected 0600: chmod 600 '" + path + "')");
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) throw ConfigError(what + " '" + path + "': cannot be read");
  return ss.str();
}

Env env_parse(const std::string& v, const std::string& what) {
  if (v == "testnet") return Env::testnet;
  if (v == "mainnet") return Env::mainnet;
  throw ConfigError(what + ": '" + v + "' is not allowed: expected testnet or mainnet");
}

}  // namespace

ApiKeys::~ApiKeys() {
  OPENSSL_cleanse(secret.data(), secret.size());
  OPENSSL_cleanse(private_pem.data(), private_pem.size());
}

ApiKeys api_keys_load(const Config& c) {
  ApiKeys k;
  if (!c.binance_key_file.empty()) {
    if (!c.binance_api_key.empty() || !c.binance_api_secret.empty())
      throw ConfigError("QT_BINANCE_KEY_FILE and QT_BINANCE_API_KEY/QT_BINANCE_API_SECRET are both set: give the keys one way");
    const std::string where = "QT_BINANCE_KEY_FILE";
    std::istringstream in(private_file_read(c.binance_key_file, where));
    std::string line, env, key_file;
    int n = 0;
    while (std::getline(in, line)) {
      ++n;
      line = trim(line);
      if (line.empty() || line[0] == '#') continue;
      const auto eq = line.find('=');
      if (eq == std::string::npos)
        throw ConfigError(where + " '" + c.binance_key_file + "' line " + std::to_string(n) + ": expected name=value");
      const std::string name = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
      if (name == "api_key") k.api_key = value;
      else if (name == "api_secret") k.secret = value;
      else if (name == "private_key_file") key_file = value;
      else if (name == "env") env = value;
      else throw ConfigError(where + " '" + c.binance_key_file + "' line " + std::to_string(n) + ": unknown name '" + name +
                             "' (expected api_key, api_secret, private_key_file or env)");
    }
    if (env.empty()) throw ConfigError(where + " '" + c.binance_key_file + "': no env= line (testnet or mainnet: where the key was created)");
    k.env = env_parse(env, where + " env");
    if (!key_file.empty()) k.private_pem = private_file_read(key_file, where + " private_key_file");
  } else {
    k.api_key = c.binance_api_key;
    k.secret = c.binance_api_secret;
    if (c.binance_key_env.empty()) throw ConfigError("QT_BINANCE_KEY_ENV: unset (testnet or mainnet: where QT_BINANCE_API_KEY was created)");
    k.env = env_parse(c.binance_key_env, "QT_BINANCE_KEY_ENV");
  }
  if (k.api_key.empty()) throw ConfigError("QT_BINANCE_API_KEY (or api_key= in QT_BINANCE_KEY_FILE): unset");
  if (k.secret.empty() == k.private_pem.empty())
    throw ConfigError("QT_BINANCE_API_SECRET (or api_secret= / private_key_file= in QT_BINANCE_KEY_FILE): give exactly one of an HMAC "
                      "secret and an Ed25519 private key");
  return k;
}

std::string rest_url(MarketKind market, Env env) {
  if (market == MarketKind::spot) return env == Env::testnet ? "https://testnet.binance.vision" : "https://api.binance.com";
  return env == Env::testnet ? "https://testnet.binancefuture.com" : "https://fapi.binance.com";
}

std::unique_ptr<Exchange> make_exchange(const Config& config, const ExchangeFactoryOptions& o) {
  if (config.exchange == ExchangeKind::paper) {
    if (o.clock == nullptr) throw std::invalid_argument("make_exchange: the paper exchange needs a clock");
    return std::make_unique<PaperExchange>(o.paper, *o.clock);
  }
  const bool spot = config.exchange == ExchangeKind::binance_spot || config.exchange == ExchangeKind::binance_spot_testnet;
  const Env env = exchange_is_simulated(config.exchange) ? Env::testnet : Env::mainnet;
  const std::string exchange = "QT_EXCHANGE=" + std::string(exchange_name(config.exchange));
  if (env == Env::mainnet && config.stage == IntegrationStage::autonomy)
    throw ConfigError("QT_AI_INTEGRATION_STAGE=AUTONOMY is refused with " + exchange + ": AUTONOMY runs only against paper or a testnet");
  const ApiKeys keys = api_keys_load(config);
  if (keys.env != env)
    throw ConfigError("a " + std::string(enum_name(keys.env)) + " API key with " + exchange + " (" + std::string(enum_name(env)) +
                      ") is refused: use a key created on the " + std::string(enum_name(env)) + " site");
  BinanceOptions b;
  b.market = spot ? MarketKind::spot : MarketKind::linear_perpetual;
  b.env = env;
  b.rest = o.rest ? *o.rest : http_endpoint_parse(rest_url(b.market, env), exchange);
  b.api_key = keys.api_key;
  b.client_prefix = o.client_prefix;
  b.symbols = config.binance_symbols;
  b.recv_window_ms = config.binance_recv_window_ms;
  b.dead_man_seconds = static_cast<std::int32_t>(config.binance_dead_man_s);
  b.leverage = o.leverage;
  b.health_alert = o.health_alert;
  try {
    Signer signer = keys.private_pem.empty() ? Signer::hmac(keys.secret) : Signer::ed25519_pem(keys.private_pem);
    return std::make_unique<BinanceExchange>(std::move(b), std::move(signer));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(exchange + ": " + e.what());
  }
}

}  // namespace qtos::binance
