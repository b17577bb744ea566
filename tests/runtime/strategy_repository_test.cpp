// Strategy repository: store, find by id prefix, lifecycle rules with history, stage metrics, reopening the file.
#include <string>

#include <gtest/gtest.h>

#include "cpu/strategy/genome_text.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace {

StrategyRecord record(float level, std::int32_t generation) {
  StrategyRecord r;
  r.genome.entry[0] = {static_cast<std::int32_t>(kernels::CondKind::rsi_below), 1, 0, level};
  r.genome = kernels::genome_normalize(r.genome);
  r.generation = generation;
  r.origin = "test";
  r.backtest_metrics = "{\"sharpe\":1.5}";
  return r;
}

TEST(StrategyRepository, LifecycleWithHistoryAndStageMetrics) {
  test::TempDir dir;
  const std::string path = dir.file("s.db");
  const StrategyRecord a = record(25.0f, 3), b = record(30.0f, 4);
  const std::string id_a = genome_id(a.genome);
  {
    StrategyRepository repo(path);
    EXPECT_TRUE(repo.upsert(a, 1000));
    EXPECT_TRUE(repo.upsert(b, 2000));
    StrategyRecord again = a;
    again.backtest_metrics = "{\"sharpe\":2.0}";
    EXPECT_FALSE(repo.upsert(again, 3000));  // known id: metrics refreshed, status kept
    ASSERT_EQ(repo.list().size(), 2u);
    EXPECT_EQ(repo.list().front().id, genome_id(b.genome));  // newest first
    const auto got = repo.get(id_a.substr(0, 8));
    ASSERT_TRUE(got);
    EXPECT_EQ(got->id, id_a);
    EXPECT_EQ(got->status, StrategyStatus::backtest);
    EXPECT_EQ(got->backtest_metrics, "{\"sharpe\":2.0}");
    EXPECT_EQ(got->rules, genome_rules(a.genome));
    EXPECT_EQ(genome_hash(got->genome), genome_hash(a.genome));
    EXPECT_FALSE(repo.get("zz"));           // not a hex prefix
    EXPECT_FALSE(repo.get("0123456789abcdef"));

    // BACKTEST -> LIVE skips shadow: refused as a value, nothing changes.
    const auto skip = repo.transition(id_a, StrategyStatus::live, "too eager", 4000);
    ASSERT_FALSE(skip);
    EXPECT_EQ(skip.error().code, "conflict");
    EXPECT_NE(skip.error().message.find("BACKTEST"), std::string::npos) << skip.error().message;
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::shadow, "OOS Sharpe 2.1", 5000));
    ASSERT_TRUE(repo.record_stage_metrics(id_a, StrategyStatus::shadow, "{\"sharpe\":2.4,\"win_rate\":0.7}"));
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::live, "shadow beat thresholds", 6000));
    ASSERT_TRUE(repo.transition(id_a, StrategyStatus::retired, "live below floor", 7000));
    EXPECT_FALSE(repo.transition(id_a, StrategyStatus::retired, "twice", 8000));
    EXPECT_EQ(repo.transition("abcd", StrategyStatus::shadow, "x", 1).error().code, "not_found");
  }
  StrategyRepository reopened(path);  // everything is on disk
  const auto r = reopened.get(id_a);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, StrategyStatus::retired);
  EXPECT_EQ(r->updated_ms, 7000);
  EXPECT_EQ(r->shadow_metrics, "{\"sharpe\":2.4,\"win_rate\":0.7}");
  const auto h = reopened.history(id_a);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].from, StrategyStatus::backtest);
  EXPECT_EQ(h[0].to, StrategyStatus::shadow);
  EXPECT_EQ(h[0].reason, "OOS Sharpe 2.1");
  EXPECT_EQ(h[2].to, StrategyStatus::retired);
  EXPECT_EQ(h[2].at_ms, 7000);
  EXPECT_EQ(reopened.list(StrategyStatus::retired).size(), 1u);
  EXPECT_EQ(reopened.list(StrategyStatus::backtest).size(), 1u);
}

TEST(StrategyRepository, TransitionRulesAndStatusNames) {
  using S = StrategyStatus;
  EXPECT_TRUE(strategy_transition_allowed(S::backtest, S::shadow));
  EXPECT_TRUE(strategy_transition_allowed(S::shadow, S::live));
  EXPECT_TRUE(strategy_transition_allowed(S::live, S::shadow));
  EXPECT_TRUE(strategy_transition_allowed(S::backtest, S::retired));
  EXPECT_FALSE(strategy_transition_allowed(S::backtest, S::live));
  EXPECT_FALSE(strategy_transition_allowed(S::retired, S::shadow));
  EXPECT_FALSE(strategy_transition_allowed(S::shadow, S::backtest));
  EXPECT_EQ(strategy_status_parse("shadow"), S::shadow);
  EXPECT_THROW(strategy_status_parse("paper"), std::invalid_argument);
}

}  // namespace
}  // namespace qtos
