// Issue 11, flow 4 (model retraining), end to end in a replay and checked from its event log: a scheduled retrain in
// replay time -> the candidate beats the ACTIVE version on its shadow window -> ModelPromoted -> the ensemble swaps
// (model signals decided after the promotion are the new version's) -> the supervisor's live record of the model
// restarts. Plus the unit test of that restart (ModelSupervisor::model_promoted).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "models/clm_service.hpp"
#include "runtime/bus/event_log.hpp"
#include "runtime/executor/replay.hpp"
#include "tests/models/synthetic.hpp"
#include "tests/support/replay_fixture.hpp"
#include "tests/support/run_command.hpp"

namespace qtos::models {
namespace flow_retrain_test {

using testing::SyntheticMarket;

constexpr std::int64_t kHourMs = 3'600'000;

FeatureSpec spec_small() {
  FeatureSpec spec;
  spec.return_lags = {1, 2, 4, 8};
  spec.horizon = 2;
  spec.window = 4;
  return spec;
}

/// Bars [0, bars) of `m` as an hourly panel whose bar 0 opens at `t0_ms` (symbols SYN000..).
MarketPanel panel_of(const SyntheticMarket& m, std::int32_t bars, std::int64_t t0_ms) {
  std::vector<std::string> names;
  for (std::int32_t s = 0; s < m.n_symbols; ++s) names.push_back("SYN" + std::to_string(1000 + s).substr(1));
  MarketPanel p(names, bars, t0_ms, kHourMs);
  const std::vector<float>* cols[] = {&m.open, &m.high, &m.low, &m.close, &m.volume, &m.quote_volume, &m.trades};
  for (int c = 0; c < kColumnCount; ++c)
    for (std::int32_t s = 0; s < m.n_symbols; ++s) {
      auto dst = p.series_mut(static_cast<Column>(c), s);
      const float* src = cols[c]->data() + s * m.stride;
      std::copy(src, src + bars, dst.begin());
    }
  p.valid_ranges_recompute();
  return p;
}

ClmServiceOptions flow_options() {
  ClmServiceOptions o;
  o.clm.enabled = true;
  o.clm.model_name = "alpha";
  o.clm.schedule = CronSchedule::parse("0 2 1 * *");  // 02:00 on the 1st of the month: one slot in the replay
  o.clm.shadow_days = 1;                              // 24 hourly bars of unseen data before a promotion
  o.clm.spec = spec_small();
  o.clm.hyper.hidden = 16;
  o.clm.train.epochs = 6;
  o.clm.train.lr = 3e-3;
  o.orchestrator = {true, SubsystemMode::enforced, true};  // AUTO_DEPLOY: a passing candidate is promoted
  o.supervisor.mode = SubsystemMode::observe;
  o.supervisor.min_outcomes = 100;
  o.supervisor_eval_interval_s = 86'400;
  // The flow is the scheduled retrain: v1's live IC is negative here, and a degradation trigger would retrain first.
  o.supervisor.degraded_ic = -1.0;
  o.new_data_bars = 1'000'000;  // nor a new_data trigger
  return o;
}

/// Limits that never bind: every confident model signal becomes an order.
ReplayOptions flow_replay_options(const std::string& ledger, const std::string& event_log) {
  ReplayOptions o = test::unbounded_replay_options(ledger);
  o.exchange.taker_fee = 0.0004;
  o.exchange.slippage = 0.0002;
  o.event_log_path = event_log;
  o.policy->max_risk_per_trade = 0.01;
  o.predictor_name = "ensemble";
  return o;
}

/// What PanelModelSignals makes of a prediction: (side, confidence), or nothing below the edge.
std::optional<std::pair<Side, double>> model_signal(const Predictions& p, std::size_t s, double min_edge) {
  const float prob = p.prob_up[s];
  if (!(prob == prob) || std::abs(prob - 0.5f) < min_edge) return std::nullopt;
  return std::pair{prob > 0.5f ? Side::buy : Side::sell, prob > 0.5f ? prob : 1.0 - prob};
}

TEST(FlowRetrain, ScheduledRetrainPromotesSwapsTheEnsembleAndRestartsTheLiveRecord) {
  test::TempDir dir;
  const std::string root = dir.file("models");
  const auto spec = spec_small();

  // v1, trained before the replay on a market that trended in short bursts (momentum); the replayed market
  // mean-reverts, so v1 is confidently wrong there and a retraining on the replayed data learns better.
  SimClock before(1'704'153'600LL * kNsPerSecond);  // 2024-01-02T00:00Z
  ModelRegistry registry(root, RegistryOptions{store::OpenMode::create, &before});
  EnsembleManager ensemble(spec, "ensemble");
  {
    ClmSink quiet;
    ContinuousLearningManager pre(registry, ensemble, flow_options().clm, quiet);
    const SyntheticMarket history(10, 1000, 0.4, 12);
    ASSERT_TRUE(pre.retrain_model(panel_of(history, 1000, 1'700'000'000'000), RetrainTrigger::manual).ok());
    ASSERT_TRUE(registry.promote("alpha", 1).ok());  // CANDIDATE -> SHADOW
    ASSERT_TRUE(registry.promote("alpha", 1).ok());  // SHADOW -> ACTIVE
    ASSERT_EQ(ensemble.reload(registry), 1U);
  }

  // The replay: 10 symbols, 1200 hourly bars from 2024-01-03T00:00Z; the only schedule slot is 2024-02-01T02:00Z.
  constexpr std::int64_t kT0Ms = 1'704'240'000'000;
  constexpr std::int64_t kSlotMs = 1'706'752'800'000;
  constexpr std::int32_t kBars = 1200, kFeedFrom = 48;  // the service sees data once two days have closed
  const SyntheticMarket live(10, kBars, -0.4, 11);
  const MarketPanel panel = panel_of(live, kBars, kT0Ms);

  // The same registry on the replay's clock (registrations and promotions in replay time); after the run, which ends
  // that clock, the test reads through `registry`.
  std::unique_ptr<ModelRegistry> replay_registry;
  std::shared_ptr<ContinuousLearningService> svc;
  std::int64_t v1_outcomes_before = -1;  // v1's live record just before it stopped serving
  ReplayOptions o = flow_replay_options(dir.file("ledger.db"), dir.file("events.qlog"));
  o.predictor = &ensemble;
  o.subsystem_factory = [&](ReplayContext& c) {
    replay_registry = std::make_unique<ModelRegistry>(root, RegistryOptions{store::OpenMode::existing, &c.bus.clock()});
    svc = std::make_shared<ContinuousLearningService>(c.bus, *replay_registry, ensemble, flow_options());
    c.services.push_back(svc);
    return std::vector<std::shared_ptr<TradingSubsystem>>{};
  };
  o.before_bar = [&](std::int32_t t, ReplayControl&) {
    if (t < kFeedFrom) return;
    (void)svc->clm().wait();  // a retraining started by the schedule ends before the replay moves on: deterministic
    if (ensemble.members().at(0).model->meta().version == 1) v1_outcomes_before = svc->supervisor().live("alpha@v1").outcomes;
    svc->data_updated(std::make_shared<const MarketPanel>(panel_of(live, t, kT0Ms)));  // the bars closed so far
  };
  const ReplayResult result = replay_run(panel, Config{}, {}, {}, o);
  ASSERT_EQ(result.bars_done, kBars);

  // The event log, in order.
  struct Seen {
    std::size_t index;
    std::int64_t ms;
  };
  std::vector<std::pair<Seen, SubsystemDecided>> decisions;
  std::vector<std::pair<Seen, ModelPromoted>> promotions;
  std::vector<std::pair<Seen, SignalGenerated>> signals;
  std::vector<std::pair<Seen, OrderSubmitted>> orders;
  {
    EventLogReader reader(dir.file("events.qlog"));
    for (std::size_t i = 0;; ++i) {
      auto next = reader.next();
      ASSERT_TRUE(next.ok()) << next.error().message;
      if (!next.value()) break;
      std::visit(
          [&](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            const Seen seen{i, e.header.ts / kNsPerMillisecond};
            if constexpr (std::is_same_v<E, SubsystemDecided>) {
              if (e.subsystem.view() == "continuous_learning") decisions.emplace_back(seen, e);
            } else if constexpr (std::is_same_v<E, ModelPromoted>) {
              promotions.emplace_back(seen, e);
            } else if constexpr (std::is_same_v<E, SignalGenerated>) {
              if (e.strategy.view() == "model:ensemble") signals.emplace_back(seen, e);
            } else if constexpr (std::is_same_v<E, OrderSubmitted>) {
              if (e.strategy.view() == "model:ensemble") orders.emplace_back(seen, e);
            }
          },
          *next.value());
    }
  }

  // 1. The retraining started at the scheduled replay time, and only then.
  ASSERT_EQ(decisions.size(), 2U);
  const auto& [retrain_at, retrain] = decisions[0];
  EXPECT_EQ(retrain_at.ms, kSlotMs);
  EXPECT_EQ(retrain.action, "RETRAIN");
  EXPECT_EQ(retrain.detail, "schedule trigger for alpha: retrain_started");
  EXPECT_TRUE(retrain.applied);
  EXPECT_EQ(retrain.mode, SubsystemMode::enforced);
  const auto v2 = registry.get("alpha", 2);
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2.value().created_ms, kSlotMs) << "registered at the replay time of the job (the replay waits for it)";
  EXPECT_EQ(v2.value().parent_version, 1);

  // 2. The candidate beat v1 on its shadow window and was promoted: ModelPromoted {alpha, 2, previous 1}.
  ASSERT_EQ(promotions.size(), 1U);
  const auto& [promoted_at, promoted] = promotions[0];
  EXPECT_EQ(promoted.model.view(), "alpha");
  EXPECT_EQ(promoted.version, 2U);
  EXPECT_EQ(promoted.previous_version, 1U);
  EXPECT_GT(promoted_at.index, retrain_at.index);
  // At the first update with a whole shadow window (24 bars with outcomes, H = 2) after v2's data: the update of
  // before_bar(n) holds n bars and runs at the close of bar n.
  const auto m2 = registry.load(v2.value(), &spec);
  const std::int32_t shadow_begin = static_cast<std::int32_t>((m2->meta().test_to_ms - kT0Ms) / kHourMs);
  EXPECT_EQ(promoted_at.ms, kT0Ms + (shadow_begin + 24 + 2 + 1) * kHourMs);
  const auto& [promote_at, promote] = decisions[1];
  EXPECT_EQ(promote.action, "PROMOTE");
  EXPECT_TRUE(promote.applied);
  EXPECT_EQ(promote_at.ms, promoted_at.ms);
  EXPECT_NE(promote.detail.find("alpha v2 rank_ic "), std::string::npos) << promote.detail;
  EXPECT_NE(promote.detail.find(": promoted"), std::string::npos) << promote.detail;
  const auto shadow = Metrics::from_json(v2.value().stage_metrics.at("SHADOW"));
  const auto v1_rec = registry.get("alpha", 1);
  ASSERT_TRUE(v1_rec.ok());
  const auto v1_live = Metrics::from_json(v1_rec.value().stage_metrics.at("ACTIVE"));  // on the same shadow bars
  EXPECT_DOUBLE_EQ(promoted.validation_score, shadow.rank_ic);
  EXPECT_GT(shadow.rank_ic, 0.05);
  EXPECT_LT(v1_live.rank_ic, 0.0);
  EXPECT_EQ(v2.value().status, ModelStatus::active);
  EXPECT_EQ(v1_rec.value().status, ModelStatus::retired);
  // The registry's record: v2 CANDIDATE at the slot, then SHADOW, ACTIVE and v1 RETIRED at the promotion.
  std::vector<std::string> moves;
  for (const auto& h : registry.history("alpha")) {
    if (h.at_ms < kT0Ms) continue;  // v1's own history, before the replay
    moves.push_back("v" + std::to_string(h.version) + " " + h.from + "->" + h.to + " @" +
                    std::to_string(h.at_ms == kSlotMs ? 0 : h.at_ms == promoted_at.ms ? 1 : -1));
  }
  EXPECT_EQ(moves, (std::vector<std::string>{"v2 ->CANDIDATE @0", "v2 CANDIDATE->SHADOW @1", "v1 ACTIVE->RETIRED @1",
                                             "v2 SHADOW->ACTIVE @1"}));

  // 3. The ensemble swapped: every model signal before the promotion is v1's prediction, every one after it is
  // v2's, and none after it is what v1 would have said. Orders follow the signals.
  ASSERT_EQ(ensemble.members().size(), 1U);
  EXPECT_EQ(ensemble.members()[0].model->name(), "alpha@v2");
  const auto m1 = registry.load(v1_rec.value(), &spec);
  const auto view = panel.view();
  std::size_t before_n = 0, after_n = 0;
  for (const auto& [seen, sig] : signals) {
    const std::int32_t t = static_cast<std::int32_t>((seen.ms - kT0Ms) / kHourMs) - 1;  // the bar that closed
    const auto s = static_cast<std::size_t>(panel.symbol_index(sig.symbol.str()));
    const bool after = seen.index > promoted_at.index;
    const auto mine = model_signal((after ? m2 : m1)->predict(view, t).value(), s, o.model_min_edge);
    ASSERT_TRUE(mine.has_value()) << "bar " << t << " " << sig.symbol.str();
    EXPECT_EQ(mine->first, sig.side) << "bar " << t;
    EXPECT_EQ(mine->second, sig.confidence) << "bar " << t;
    if (after) {
      ++after_n;
      const auto other = m1->predict(view, t);
      const auto v1_said = other.ok() ? model_signal(other.value(), s, o.model_min_edge) : std::nullopt;
      EXPECT_NE(v1_said, mine) << "bar " << t << ": v1 would have signalled the same";
    } else {
      ++before_n;
    }
  }
  EXPECT_GT(before_n, 100U) << "v1 traded from the start";
  EXPECT_GT(after_n, 100U);
  // Entry orders (the ledger knows which orders are entries) carry the confidence of the signal they came from.
  const Ledger ledger(dir.file("ledger.db"), store::OpenMode::existing);
  std::size_t entries_before = 0, entries_after = 0;
  for (const auto& rec : ledger.orders(OrderQuery{.strategy = "model:ensemble"})) {
    if (rec.purpose != OrderPurpose::entry || rec.status == OrderStatus::denied) continue;
    const auto sig = std::find_if(signals.begin(), signals.end(), [&](const auto& s) {
      return s.first.ms == rec.created / kNsPerMillisecond && s.second.symbol == rec.request.symbol && s.second.side == rec.request.side;
    });
    ASSERT_NE(sig, signals.end()) << "order " << rec.request.order_id;
    EXPECT_EQ(rec.confidence, sig->second.confidence);
    (sig->first.index > promoted_at.index ? entries_after : entries_before) += 1;
  }
  EXPECT_GT(entries_before, 10U);
  EXPECT_GT(entries_after, 10U);
  std::size_t submitted_after = 0;
  for (const auto& [seen, ord] : orders) submitted_after += seen.index > promoted_at.index ? 1 : 0;
  EXPECT_GE(submitted_after, entries_after);

  // 4. The supervisor's live record of alpha restarted at the promotion: v1's window is gone, v2's holds exactly
  // the outcomes of its own predictions (made from the first update after the promotion, scored H = 2 bars later).
  const std::int32_t tp = static_cast<std::int32_t>((promoted_at.ms - kT0Ms) / kHourMs) - 1;  // before_bar(tp) promoted
  EXPECT_GT(v1_outcomes_before, 0);
  EXPECT_EQ(svc->supervisor().live("alpha@v1").outcomes, 0);
  EXPECT_EQ(svc->supervisor().live("alpha@v2").outcomes, 10 * (kBars - 3 - tp));
  EXPECT_GT(svc->supervisor().live("alpha@v2").rank_ic, 0.05);
}

// The restart itself: on a promotion the model's other versions' windows go, the promoted version keeps only what it
// saw while serving, other models keep theirs, and a version that serves again (a rollback) starts empty.
TEST(ModelSupervisorReset, APromotionRestartsThatModelsLiveRecordOnly) {
  const SyntheticMarket m(6, 200, -0.4, 5);
  const auto table = features_build(m.view(), spec_small());
  TrainOptions train;
  train.epochs = 1;
  ModelHyper hyper;
  hyper.hidden = 8;
  auto trained = model_train(table, split_by_time(table), ModelKind::mlp, hyper, train);
  ASSERT_TRUE(trained.ok());
  const std::shared_ptr<const Model> a1 = trained.value()->renamed("alpha", 1), a2 = trained.value()->renamed("alpha", 2),
                                     b1 = trained.value()->renamed("beta", 1);
  EnsembleManager ensemble(spec_small());
  SupervisorOptions options;
  options.min_outcomes = 10;
  ModelSupervisor sup(ensemble, options);
  const auto observe = [&](std::int32_t from, std::int32_t to) {
    for (std::int32_t t = from; t < to; ++t) sup.observe(m.view(), t);
  };
  // Each bar's predictions are scored H = 2 bars later: n consecutive bars give 6 * (n - 2) pairs.
  ensemble.members_set({{a1, 1.0}, {b1, 1.0}});
  observe(100, 150);
  EXPECT_EQ(sup.live("alpha@v1").outcomes, 6 * 48);
  ensemble.members_set({{a2, 1.0}, {b1, 1.0}});  // what the CLM's reload does at the promotion
  observe(150, 160);
  sup.model_promoted("alpha", 2);
  EXPECT_EQ(sup.live("alpha@v1").outcomes, 0);       // without the restart: 288, kept for a rollback to resume
  EXPECT_EQ(sup.live("alpha@v2").outcomes, 6 * 8);    // its own record since it serves
  EXPECT_EQ(sup.live("beta@v1").outcomes, 6 * 58);    // another model: untouched
  ensemble.members_set({{a1, 1.0}, {b1, 1.0}});  // a rollback to v1, announced by ModelPromoted {alpha, 1}
  sup.model_promoted("alpha", 1);
  EXPECT_EQ(sup.live("alpha@v2").outcomes, 0);
  observe(160, 170);
  const auto report = sup.evaluate();
  ASSERT_EQ(report.models.size(), 2U);
  EXPECT_EQ(report.models[0].model, "alpha@v1");
  EXPECT_EQ(report.models[0].outcomes, 6 * 8) << "v1 starts again from an empty window, not from its old 288 pairs";
  EXPECT_EQ(report.models[1].outcomes, 6 * 68);
  sup.model_promoted("gamma", 3);  // a model the supervisor does not track: nothing to do
  EXPECT_EQ(sup.live("beta@v1").outcomes, 6 * 68);
}

}  // namespace flow_retrain_test
}  // namespace qtos::models
