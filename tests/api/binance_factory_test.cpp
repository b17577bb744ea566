// The exchange factory and the connector's start-up safety: QT_EXCHANGE + QT_BINANCE_ENV, keys from a file only its
// owner can read, a key of one environment refused with the other's URL, AUTONOMY refused on mainnet, keys never shown
// by the configuration; and a factory-built connector trading against the fake venue.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "api/binance/exchange_factory.hpp"
#include "runtime/clock/clock.hpp"
#include "tests/api/binance_fake_server.hpp"
#include "tests/support/run_command.hpp"

namespace qtos::binance {
namespace binance_factory_test {

Config load(std::map<std::string, std::string> env) {
  ConfigSources s;
  s.environment = std::move(env);
  return config_load(s);
}

std::string write_file(const test::TempDir& dir, const std::string& name, const std::string& text, mode_t mode) {
  const std::string path = dir.file(name);
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
  return path;
}

TEST(BinanceConfig, EnvironmentVariableCombinesWithTheExchange) {
  EXPECT_EQ(load({{"QT_EXCHANGE", "binance-futures"}, {"QT_BINANCE_ENV", "testnet"}}).exchange, ExchangeKind::binance_futures_testnet);
  EXPECT_EQ(load({{"QT_EXCHANGE", "binance-spot"}, {"QT_BINANCE_ENV", "mainnet"}}).exchange, ExchangeKind::binance_spot);
  EXPECT_EQ(load({{"QT_EXCHANGE", "binance-futures"}}).exchange, ExchangeKind::binance_futures);
  EXPECT_THROW(load({{"QT_EXCHANGE", "binance-futures-testnet"}, {"QT_BINANCE_ENV", "mainnet"}}), ConfigError);
  EXPECT_THROW(load({{"QT_BINANCE_ENV", "prod"}}), ConfigError);
  // AUTONOMY is refused on mainnet whichever way it is named.
  EXPECT_THROW(load({{"QT_EXCHANGE", "binance-futures"}, {"QT_BINANCE_ENV", "mainnet"}, {"QT_AI_INTEGRATION_STAGE", "AUTONOMY"}}), ConfigError);
  EXPECT_NO_THROW(load({{"QT_EXCHANGE", "binance-futures"}, {"QT_BINANCE_ENV", "testnet"}, {"QT_AI_INTEGRATION_STAGE", "AUTONOMY"}}));
}

TEST(BinanceConfig, KeysAreNeverShown) {
  const Config c = load({{"QT_BINANCE_API_KEY", "KEY-abc123"}, {"QT_BINANCE_API_SECRET", "SECRET-xyz789"}, {"QT_BINANCE_KEY_ENV", "testnet"}});
  for (const auto& [name, entry] : c.entries) {
    EXPECT_EQ(entry.value.find("abc123"), std::string::npos) << name;
    EXPECT_EQ(entry.value.find("xyz789"), std::string::npos) << name;
  }
  EXPECT_EQ(c.entries.at("QT_BINANCE_API_SECRET").value, "(set, hidden)");
}

TEST(BinanceConfig, KeyFileMustBeReadableOnlyByItsOwner) {
  test::TempDir dir;
  const std::string text = "# testnet keys\napi_key=k1\napi_secret=s1\nenv=testnet\n";
  Config c = load({{"QT_BINANCE_KEY_FILE", write_file(dir, "keys", text, 0644)}});
  try {
    (void)api_keys_load(c);
    FAIL() << "a world-readable key file was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("chmod 600"), std::string::npos) << e.what();
  }
  c.binance_key_file = write_file(dir, "keys600", text, 0600);
  const ApiKeys k = api_keys_load(c);
  EXPECT_EQ(k.api_key, "k1");
  EXPECT_EQ(k.env, Env::testnet);
  c.binance_key_file = write_file(dir, "noenv", "api_key=k1\napi_secret=s1\n", 0600);
  EXPECT_THROW((void)api_keys_load(c), ConfigError);
}

TEST(BinanceConfig, TestnetKeyWithMainnetExchangeIsRefused) {
  const Config c = load({{"QT_EXCHANGE", "binance-futures"}, {"QT_BINANCE_ENV", "mainnet"}, {"QT_BINANCE_API_KEY", "k"},
                         {"QT_BINANCE_API_SECRET", "s"}, {"QT_BINANCE_KEY_ENV", "testnet"}});
  try {
    (void)make_exchange(c, {});
    FAIL() << "a testnet key was accepted for mainnet";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("testnet API key"), std::string::npos) << e.what();
  }
  // And the reverse.
  const Config r = load({{"QT_EXCHANGE", "binance-spot-testnet"}, {"QT_BINANCE_API_KEY", "k"}, {"QT_BINANCE_API_SECRET", "s"},
                         {"QT_BINANCE_KEY_ENV", "mainnet"}});
  EXPECT_THROW((void)make_exchange(r, {}), ConfigError);
}

TEST(BinanceConfig, PaperStaysThePaperExchange) {
  SimClock clock(0);
  ExchangeFactoryOptions o;
  o.clock = &clock;
  const auto ex = make_exchange(load({}), o);
  EXPECT_EQ(ex->name(), "paper");
}

TEST(BinanceConfig, FactoryBuiltConnectorStartsAgainstTheFakeVenue) {
  test::FakeBinance fake(true, "k", "s");
  fake.price_set("BTCUSDT", 100.0);
  const Config c = load({{"QT_EXCHANGE", "binance-futures"}, {"QT_BINANCE_ENV", "testnet"}, {"QT_BINANCE_API_KEY", "k"},
                         {"QT_BINANCE_API_SECRET", "s"}, {"QT_BINANCE_KEY_ENV", "testnet"}, {"QT_BINANCE_SYMBOLS", "btcusdt"}});
  ExchangeFactoryOptions o;
  o.rest = HttpEndpoint{"localhost", fake.port(), true, fake.ca_file()};
  o.client_prefix = "run7";
  auto ex = make_exchange(c, o);
  auto* bn = dynamic_cast<BinanceExchange*>(ex.get());
  ASSERT_NE(bn, nullptr);
  EXPECT_TRUE(bn->simulated());
  const auto s = bn->start();
  ASSERT_TRUE(s.ok()) << s.error().message;
  OrderRequest r;
  r.order_id = 5;
  r.symbol = "BTCUSDT";
  r.qty = 0.1;
  EXPECT_EQ(ex->submit(r).outcome, SubmitOutcome::accepted);
  ASSERT_EQ(fake.orders().size(), 1u);
  EXPECT_EQ(fake.orders()[0].client_id, "run7-5");
}

}  // namespace binance_factory_test
}  // namespace qtos::binance
