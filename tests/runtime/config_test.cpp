// The typed configuration: defaults, stage presets, precedence, caps and every kind of bad value.
#include <fstream>

#include <gtest/gtest.h>

#include "runtime/config/config.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace config_test {

Config load(std::map<std::string, std::string> env, std::map<std::string, std::string> file = {}) {
  ConfigSources s;
  s.environment = std::move(env);
  s.env_file = std::move(file);
  s.env_file_path = "test.env";
  return config_load(s);
}

std::string load_error(std::map<std::string, std::string> env, std::map<std::string, std::string> file = {}) {
  try {
    load(std::move(env), std::move(file));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsAreEverythingOffObservationSafe) {
  const Config c = load({});
  EXPECT_EQ(c.stage, IntegrationStage::observation);
  for (const auto& s : c.subsystems) {
    EXPECT_FALSE(s.enabled);
    EXPECT_EQ(s.mode, SubsystemMode::off);
  }
  EXPECT_TRUE(c.fail_safe);
  EXPECT_FALSE(c.emergency_brake);
  EXPECT_TRUE(c.risk_os_enabled);
  EXPECT_TRUE(c.orchestrator_enabled);
  EXPECT_EQ(c.hfos_update_interval, 60);
  EXPECT_EQ(c.self_healing_check_interval, 120);
  EXPECT_EQ(c.model_supervisor_eval_interval, 3600);
  EXPECT_DOUBLE_EQ(c.max_daily_dd_pct, 5.0);
  EXPECT_DOUBLE_EQ(c.max_open_dd_pct, 10.0);
  EXPECT_EQ(c.sg_population_size, 50);
  EXPECT_EQ(c.sg_generations, 100);
  EXPECT_EQ(c.opp_ranker_top_n, 20);
  EXPECT_EQ(c.clm_retrain_schedule.text(), "0 2 * * 0");
  EXPECT_FALSE(c.retraining_auto_deploy);
  EXPECT_EQ(c.exchange, ExchangeKind::paper);
  EXPECT_EQ(c.entries.at("QT_AI_HFOS_UPDATE_INTERVAL").source, ValueSource::default_value);
}

TEST(Config, StagePresetsMatchTheTable) {
  using M = SubsystemMode;
  const std::map<IntegrationStage, std::vector<M>> want = {
      {IntegrationStage::partial, {M::advisory, M::off, M::off, M::advisory, M::observe, M::off, M::off, M::advisory, M::off}},
      {IntegrationStage::coordination,
       {M::enforced, M::advisory, M::advisory, M::advisory, M::protective, M::advisory, M::advisory, M::enforced, M::off}},
      {IntegrationStage::autonomy,
       {M::enforced, M::enforced, M::enforced, M::enforced, M::protective, M::enforced, M::enforced, M::enforced, M::advisory}},
  };
  for (const auto& [stage, modes] : want) {
    const Config c = load({{"QT_AI_INTEGRATION_STAGE", std::string(stage_name(stage))}});
    for (std::size_t i = 0; i < kSubsystemCount; ++i) {
      EXPECT_EQ(c.subsystems[i].mode, modes[i]) << stage_name(stage) << " " << subsystem_name(static_cast<Subsystem>(i));
      EXPECT_EQ(c.subsystems[i].enabled, modes[i] != M::off);
    }
  }
}

TEST(Config, ObservationCapsEveryModeAtObserve) {
  const Config c = load({{"QT_AI_HFOS_ENABLED", "true"}, {"QT_AI_HFOS_MODE", "ENFORCED"}, {"QT_AI_PIL_ENABLED", "1"}});
  EXPECT_EQ(c.subsystem(Subsystem::hfos).mode, SubsystemMode::observe);
  EXPECT_EQ(c.subsystem(Subsystem::hfos).source, ValueSource::stage_cap);
  EXPECT_NE(c.subsystem(Subsystem::hfos).note.find("capped"), std::string::npos);
  EXPECT_EQ(c.subsystem(Subsystem::pil).mode, SubsystemMode::observe);  // enabled, no mode, no preset
}

TEST(Config, ExplicitVariableWinsOverPresetAndEnvWinsOverFile) {
  const Config c = load({{"QT_AI_INTEGRATION_STAGE", "COORDINATION"}, {"QT_AI_HFOS_MODE", "advisory"}, {"QT_AI_PBA_ENABLED", "false"}},
                        {{"QT_AI_HFOS_MODE", "OBSERVE"}, {"QT_OPP_RANKER_TOP_N", "7"}});
  EXPECT_EQ(c.subsystem(Subsystem::hfos).mode, SubsystemMode::advisory);
  EXPECT_EQ(c.subsystem(Subsystem::hfos).source, ValueSource::environment);
  EXPECT_FALSE(c.subsystem(Subsystem::pba).enabled);
  EXPECT_EQ(c.subsystem(Subsystem::pba).mode, SubsystemMode::off);
  EXPECT_EQ(c.subsystem(Subsystem::pil).source, ValueSource::stage_preset);
  EXPECT_EQ(c.opp_ranker_top_n, 7);
  EXPECT_EQ(c.entries.at("QT_OPP_RANKER_TOP_N").source, ValueSource::env_file);
}

TEST(Config, ModeWithoutEnableChangesNothingButWarns) {
  const Config c = load({{"QT_AI_INTEGRATION_STAGE", "PARTIAL"}, {"QT_AI_PIL_MODE", "ADVISORY"}});
  EXPECT_FALSE(c.subsystem(Subsystem::pil).enabled);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("QT_AI_PIL_ENABLED=true"), std::string::npos);
}

TEST(Config, AutonomyRefusedOnLiveExchange) {
  const std::string err = load_error({{"QT_AI_INTEGRATION_STAGE", "AUTONOMY"}, {"QT_EXCHANGE", "binance-futures"}});
  EXPECT_NE(err.find("AUTONOMY is refused with QT_EXCHANGE=binance-futures"), std::string::npos) << err;
  EXPECT_NO_THROW(load({{"QT_AI_INTEGRATION_STAGE", "AUTONOMY"}, {"QT_EXCHANGE", "binance-futures-testnet"}}));
}

TEST(Config, BadValuesNameVariableValueAndAllowed) {
  struct Case {
    std::string var, value, expect;
  };
  const std::vector<Case> cases = {
      {"QT_AI_HFOS_MODE", "FOO", "QT_AI_HFOS_MODE='FOO' (from environment) is not allowed: expected OFF, OBSERVE, ADVISORY or ENFORCED"},
      {"QT_AI_PIL_MODE", "PROTECTIVE", "PROTECTIVE is for SELF_HEALING only"},
      {"QT_AI_MAX_DAILY_DD", "-3", "QT_AI_MAX_DAILY_DD='-3' (from environment) is not allowed: expected a percentage in (0, 100]"},
      {"QT_AI_MAX_OPEN_DD", "nan", "QT_AI_MAX_OPEN_DD='nan'"},
      {"QT_AI_PBA_REBALANCE_INTERVAL", "abc", "QT_AI_PBA_REBALANCE_INTERVAL='abc' (from environment) is not allowed: expected an integer of seconds"},
      {"QT_AI_PBA_REBALANCE_INTERVAL", "0", "QT_AI_PBA_REBALANCE_INTERVAL='0'"},
      {"QT_CLM_RETRAIN_SCHEDULE", "0 25 * * *", "QT_CLM_RETRAIN_SCHEDULE='0 25 * * *' (from environment) is not allowed: expected a 5-field cron"},
      {"QT_AI_FAIL_SAFE", "maybe", "QT_AI_FAIL_SAFE='maybe'"},
      {"QT_AI_INTEGRATION_STAGE", "FULL", "expected OBSERVATION, PARTIAL, COORDINATION or AUTONOMY"},
      {"QT_DEVICE", "tpu", "QT_DEVICE='tpu'"},
      {"QT_EXCHANGE", "kraken", "QT_EXCHANGE='kraken'"},
      {"QT_SG_POPULATION_SIZE", "1", "QT_SG_POPULATION_SIZE='1'"},
      {"QT_AI_HFOS_MODEE", "ADVISORY", "QT_AI_HFOS_MODEE (from environment) is not a qtos setting: did you mean QT_AI_HFOS_MODE?"},
      {"QT_OPP_RANKR_TOP_N", "5", "did you mean QT_OPP_RANKER_TOP_N?"},
  };
  for (const auto& c : cases) {
    const std::string err = load_error({{c.var, c.value}});
    EXPECT_NE(err.find(c.expect), std::string::npos) << c.var << "=" << c.value << " gave: " << err;
  }
}

TEST(Config, AllErrorsReportedTogetherAndFileNamed) {
  const std::string err = load_error({{"QT_AI_HFOS_MODE", "FOO"}}, {{"QT_AI_MAX_DAILY_DD", "-3"}});
  EXPECT_NE(err.find("QT_AI_HFOS_MODE"), std::string::npos);
  EXPECT_NE(err.find("QT_AI_MAX_DAILY_DD='-3' (from test.env)"), std::string::npos) << err;
}

TEST(Config, UnrelatedQtVariablesAreOnlyWarnings) {
  const Config c = load({{"QT_QPA_PLATFORM", "offscreen"}});  // Qt's own variable
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("QT_QPA_PLATFORM"), std::string::npos);
}

TEST(EnvFile, ParsesExportsQuotesAndComments) {
  test::TempDir dir;
  const auto path = dir / "a.env";
  std::ofstream(path) << "# comment\n\nexport QT_AI_HFOS_ENABLED=true\nQT_STATE_DIR=\"/var/lib/qtos state\"\n"
                         "QT_OPP_RANKER_TOP_N=12 # trailing\nOTHER=ignored\n";
  const auto m = env_file_read(path.string());
  EXPECT_EQ(m.at("QT_AI_HFOS_ENABLED"), "true");
  EXPECT_EQ(m.at("QT_STATE_DIR"), "/var/lib/qtos state");
  EXPECT_EQ(m.at("QT_OPP_RANKER_TOP_N"), "12");
  EXPECT_EQ(m.count("OTHER"), 0u);
}

TEST(EnvFile, MalformedLineNamesFileAndLine) {
  test::TempDir dir;
  const auto path = dir / "b.env";
  std::ofstream(path) << "QT_AI_HFOS_ENABLED=true\nthis is not an assignment\n";
  try {
    env_file_read(path.string());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("b.env:2: expected KEY=VALUE"), std::string::npos) << e.what();
  }
  EXPECT_THROW(env_file_read((dir / "missing.env").string()), ConfigError);
}

TEST(EnvFile, ADirectoryIsAnErrorNamingIt) {
  test::TempDir dir;
  try {
    env_file_read(dir.path().string());
    FAIL() << "a directory was read as an empty .env file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is a directory; expected a file of QT_NAME=VALUE lines"), std::string::npos) << e.what();
  }
}

TEST(Config, StrategyGeneratorThresholdsAndTheirRanges) {
  const Config d = load({});
  EXPECT_EQ(d.sg_promote_min_sharpe, 2.0);
  EXPECT_EQ(d.sg_promote_min_win_rate, 0.65);
  EXPECT_EQ(d.sg_promote_min_trades, 10);
  EXPECT_EQ(d.sg_live_floor_sharpe, 0.0);
  EXPECT_EQ(d.sg_review_interval, 3600);
  for (const char* n : {"QT_SG_PROMOTE_MIN_SHARPE", "QT_SG_PROMOTE_MIN_WIN_RATE", "QT_SG_PROMOTE_MIN_TRADES", "QT_SG_LIVE_FLOOR_SHARPE",
                        "QT_SG_REVIEW_INTERVAL"}) {
    ASSERT_TRUE(d.entries.count(n)) << n;  // `qtos config show` lists every entry
    EXPECT_EQ(d.entries.at(n).source, ValueSource::default_value);
  }
  const Config c = load({{"QT_SG_PROMOTE_MIN_SHARPE", "1.5"}, {"QT_SG_PROMOTE_MIN_WIN_RATE", "0.55"}, {"QT_SG_LIVE_FLOOR_SHARPE", "-0.5"},
                         {"QT_SG_REVIEW_INTERVAL", "600"}},
                        {{"QT_SG_PROMOTE_MIN_TRADES", "25"}});
  EXPECT_EQ(c.sg_promote_min_sharpe, 1.5);
  EXPECT_EQ(c.sg_promote_min_win_rate, 0.55);
  EXPECT_EQ(c.sg_promote_min_trades, 25);
  EXPECT_EQ(c.sg_live_floor_sharpe, -0.5);
  EXPECT_EQ(c.sg_review_interval, 600);
  EXPECT_EQ(c.entries.at("QT_SG_PROMOTE_MIN_TRADES").source, ValueSource::env_file);
  EXPECT_EQ(c.entries.at("QT_SG_LIVE_FLOOR_SHARPE").value, "-0.5");
  const std::string e = load_error({{"QT_SG_PROMOTE_MIN_SHARPE", "lots"}, {"QT_SG_PROMOTE_MIN_WIN_RATE", "1.2"},
                                    {"QT_SG_PROMOTE_MIN_TRADES", "-3"}, {"QT_SG_LIVE_FLOOR_SHARPE", "nan"},
                                    {"QT_SG_REVIEW_INTERVAL", "0"}});
  for (const char* w : {"QT_SG_PROMOTE_MIN_SHARPE='lots'", "in [-10, 50]", "QT_SG_PROMOTE_MIN_WIN_RATE='1.2'", "a fraction in [0, 1]",
                        "QT_SG_PROMOTE_MIN_TRADES='-3'", "QT_SG_LIVE_FLOOR_SHARPE='nan'", "QT_SG_REVIEW_INTERVAL='0'"})
    EXPECT_NE(e.find(w), std::string::npos) << w << "\n" << e;
}

TEST(Config, RiskOsLimitsAndTheirRanges) {
  const char* names[] = {"QT_RISK_MAX_NOTIONAL",        "QT_RISK_PRICE_COLLAR_PCT",   "QT_RISK_MAX_ORDERS_PER_MIN",
                         "QT_RISK_STOP_COOLDOWN_S",     "QT_RISK_STOP_GUARD_COUNT",   "QT_RISK_STOP_GUARD_WINDOW_S",
                         "QT_RISK_STOP_GUARD_LOCK_S"};
  const Config d = load({});
  EXPECT_EQ(d.risk_max_notional, 1'000'000);
  EXPECT_EQ(d.risk_price_collar_pct, 10.0);
  EXPECT_EQ(d.risk_max_orders_per_min, 600);
  EXPECT_EQ(d.risk_stop_cooldown_s, 0);
  EXPECT_EQ(d.risk_stop_guard_count, 0);
  EXPECT_EQ(d.risk_stop_guard_window_s, 3600);
  EXPECT_EQ(d.risk_stop_guard_lock_s, 3600);
  for (const char* n : names) {
    ASSERT_TRUE(d.entries.count(n)) << n;  // `qtos config show` lists every entry
    EXPECT_EQ(d.entries.at(n).source, ValueSource::default_value);
  }
  EXPECT_EQ(d.entries.at("QT_RISK_MAX_NOTIONAL").value, "1000000");

  const Config c = load({{"QT_RISK_MAX_NOTIONAL", "250000.5"}, {"QT_RISK_PRICE_COLLAR_PCT", "2.5"}, {"QT_RISK_MAX_ORDERS_PER_MIN", "30"},
                         {"QT_RISK_STOP_COOLDOWN_S", "900"}, {"QT_RISK_STOP_GUARD_COUNT", "3"}},
                        {{"QT_RISK_STOP_GUARD_WINDOW_S", "7200"}, {"QT_RISK_STOP_GUARD_LOCK_S", "1800"}});
  EXPECT_EQ(c.risk_max_notional, 250000.5);
  EXPECT_EQ(c.entries.at("QT_RISK_MAX_NOTIONAL").value, "250000.5");
  EXPECT_EQ(c.risk_price_collar_pct, 2.5);
  EXPECT_EQ(c.risk_max_orders_per_min, 30);
  EXPECT_EQ(c.risk_stop_cooldown_s, 900);
  EXPECT_EQ(c.risk_stop_guard_count, 3);
  EXPECT_EQ(c.risk_stop_guard_window_s, 7200);
  EXPECT_EQ(c.risk_stop_guard_lock_s, 1800);
  EXPECT_EQ(c.entries.at("QT_RISK_STOP_GUARD_LOCK_S").source, ValueSource::env_file);

  struct Case {
    std::string var, value, expect;
  };
  const std::vector<Case> bad = {
      {"QT_RISK_MAX_NOTIONAL", "0", "QT_RISK_MAX_NOTIONAL='0' (from environment) is not allowed: expected a quote amount in (0, 1e15]"},
      {"QT_RISK_MAX_NOTIONAL", "inf", "QT_RISK_MAX_NOTIONAL='inf'"},
      {"QT_RISK_PRICE_COLLAR_PCT", "150", "QT_RISK_PRICE_COLLAR_PCT='150' (from environment) is not allowed: expected a percentage in (0, 100]"},
      {"QT_RISK_PRICE_COLLAR_PCT", "-1", "QT_RISK_PRICE_COLLAR_PCT='-1'"},
      {"QT_RISK_MAX_ORDERS_PER_MIN", "0", "QT_RISK_MAX_ORDERS_PER_MIN='0' (from environment) is not allowed: expected an integer of orders in [1, 1000000]"},
      {"QT_RISK_MAX_ORDERS_PER_MIN", "2.5", "QT_RISK_MAX_ORDERS_PER_MIN='2.5'"},
      {"QT_RISK_STOP_COOLDOWN_S", "-5", "QT_RISK_STOP_COOLDOWN_S='-5' (from environment) is not allowed: expected an integer of seconds in [0, 2592000]"},
      {"QT_RISK_STOP_GUARD_COUNT", "many", "QT_RISK_STOP_GUARD_COUNT='many' (from environment) is not allowed: expected an integer of stop-outs in [0, 1000]"},
      {"QT_RISK_STOP_GUARD_WINDOW_S", "0", "QT_RISK_STOP_GUARD_WINDOW_S='0' (from environment) is not allowed: expected an integer of seconds in [1, 2592000]"},
      {"QT_RISK_STOP_GUARD_LOCK_S", "99999999", "QT_RISK_STOP_GUARD_LOCK_S='99999999'"},
      {"QT_RISK_MAX_NOTIONL", "5", "did you mean QT_RISK_MAX_NOTIONAL?"},
  };
  for (const auto& b : bad) {
    const std::string err = load_error({{b.var, b.value}});
    EXPECT_NE(err.find(b.expect), std::string::npos) << b.var << "=" << b.value << " gave: " << err;
  }
}

}  // namespace config_test
}  // namespace qtos
