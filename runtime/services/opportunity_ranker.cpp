// MarketOpportunityRanker: streaming features from bar events, ranking on a timer, OpportunitiesUpdated.
#include "runtime/services/opportunity_ranker.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "runtime/ranking/panel_ranking.hpp"

namespace qtos {

RankWeights rank_weights_from_policy_extra(const std::map<std::string, std::string>& extra) {
  static constexpr std::string_view kPrefix = "opp_ranker.";
  std::map<std::string, double> values;
  for (const auto& [key, text] : extra) {
    if (key.rfind(kPrefix, 0) != 0) continue;
    double v = 0;
    std::size_t used = 0;
    try {
      v = std::stod(text, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != text.size())
      throw std::invalid_argument("policy extra '" + key + "' = '" + text + "': expected a number >= 0");
    values[key.substr(kPrefix.size())] = v;
  }
  try {
    return rank_weights_from_policy(values);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("policy extra opp_ranker.*: ") + e.what());
  }
}

namespace {

std::vector<std::string> checked_symbols(const std::vector<std::string>& symbols) {
  if (symbols.empty()) throw std::invalid_argument("MarketOpportunityRanker: the symbol list is empty");
  return symbols;
}

}  // namespace

MarketOpportunityRanker::MarketOpportunityRanker(EventBus& bus, const Config& config, const PolicyStore& policy,
                                                 RankerOptions options)
    : Service("opportunity-ranker", config.opp_ranker_enabled ? SubsystemMode::enforced : SubsystemMode::off, bus),
      config_(config),
      policy_(policy),
      options_(std::move(options)),
      engine_(static_cast<std::int32_t>(checked_symbols(options_.symbols).size()), options_.features) {
  for (std::size_t i = 0; i < options_.symbols.size(); ++i) {
    if (!index_.emplace(options_.symbols[i], static_cast<std::int32_t>(i)).second)
      throw std::invalid_argument("MarketOpportunityRanker: symbol '" + options_.symbols[i] + "' is listed twice");
  }
  clear_pending();
}

void MarketOpportunityRanker::clear_pending() {
  const std::size_t n = options_.symbols.size();
  high_.assign(n, NAN);
  low_.assign(n, NAN);
  close_.assign(n, NAN);
  quote_volume_.assign(n, 0.0f);
  pending_count_ = 0;
}

void MarketOpportunityRanker::warm_up(const MarketPanel& panel) {
  if (panel.symbols() != options_.symbols)
    throw std::invalid_argument("MarketOpportunityRanker::warm_up: the panel's symbols differ from the ranker's");
  if (panel.n_bars() == 0) return;
  const std::int32_t last = panel.n_bars() - 1;
  engine_.replay(panel.view(), std::max(0, last - kRankHistoryBars + 1), last);
  interval_ms_ = panel.interval_ms();
  pending_open_ms_ = panel.time_ms(last) + interval_ms_;
  clear_pending();
}

void MarketOpportunityRanker::on_start() {
  subscribe<MarketBarClosed>([this](const MarketBarClosed& bar) { on_bar(bar); });
  every(config_.opp_ranker_update_interval * kNsPerSecond, [this](TimeNs) { publish_rankings(); });
}

void MarketOpportunityRanker::flush_pending() {
  engine_.advance(engine_.last_bar() + 1, high_, low_, close_, quote_volume_);
  pending_open_ms_ += interval_ms_;
  clear_pending();
}

void MarketOpportunityRanker::on_bar(const MarketBarClosed& bar) {
  const auto it = index_.find(bar.symbol.view());
  if (it == index_.end() || bar.interval_s <= 0) {
    ++bars_ignored_;
    return;
  }
  const std::int64_t open_ms = bar.open_time / kNsPerMillisecond;
  if (interval_ms_ == 0) interval_ms_ = static_cast<std::int64_t>(bar.interval_s) * 1000;
  if (pending_open_ms_ < 0) pending_open_ms_ = open_ms;
  if (open_ms < pending_open_ms_) {  // an interval that is already closed: its slot has been consumed
    ++bars_ignored_;
    return;
  }
  // A bar of a later interval closes the pending one, and every interval skipped in between (no bar at all).
  while (open_ms > pending_open_ms_) flush_pending();
  const auto s = static_cast<std::size_t>(it->second);
  if (std::isnan(close_[s])) ++pending_count_;
  high_[s] = static_cast<float>(bar.high);
  low_[s] = static_cast<float>(bar.low);
  close_[s] = static_cast<float>(bar.close);
  // The exchange's quote (dollar) volume when the publisher knew it; otherwise (NaN) estimated as volume x close.
  if (bar.quote_volume_known()) {
    quote_volume_[s] = static_cast<float>(bar.quote_volume);
  } else {
    quote_volume_[s] = static_cast<float>(bar.volume * bar.close);
    ++bars_quote_volume_estimated_;
  }
  if (pending_count_ == static_cast<std::int32_t>(options_.symbols.size())) flush_pending();
}

Ranking MarketOpportunityRanker::rank_all_symbols() const {
  const auto policy = policy_.current();
  const RankWeights weights = rank_weights_from_policy_extra(policy->extra);
  return opportunity_rank(engine_.rows(), options_.symbols, engine_.last_bar(), weights, options_.filters);
}

SymbolScore MarketOpportunityRanker::score_symbol(const std::string& symbol) const {
  if (!index_.count(symbol)) throw std::invalid_argument("score_symbol: '" + symbol + "' is not in the ranker's universe");
  const Ranking r = rank_all_symbols();
  return *r.find(symbol);
}

std::vector<SymbolScore> MarketOpportunityRanker::get_top_n_opportunities(std::optional<std::size_t> n) const {
  const Ranking r = rank_all_symbols();
  const auto top = r.top(n.value_or(static_cast<std::size_t>(config_.opp_ranker_top_n)));
  return {top.begin(), top.end()};
}

void MarketOpportunityRanker::publish_rankings() {
  Ranking r = rank_all_symbols();
  const double bars_per_day = interval_ms_ > 0 ? 86'400'000.0 / static_cast<double>(interval_ms_) : 0.0;
  OpportunitiesUpdated ev;
  for (const auto& s : r.top(static_cast<std::size_t>(config_.opp_ranker_top_n))) {
    Opportunity o;
    o.symbol = s.symbol;
    o.score = s.score;
    o.volume_24h = static_cast<double>(s.features.get(kernels::Feature::dollar_volume)) * bars_per_day;
    ev.top.push_back(o);
  }
  ev.universe_size = static_cast<std::uint32_t>(r.eligible);
  spdlog::debug("opportunity-ranker: bar {}, {} of {} symbols ranked, top {}", r.bar, r.eligible, options_.symbols.size(),
                ev.top.empty() ? std::string("-") : ev.top.front().symbol.str());
  last_ = std::move(r);
  publish(std::move(ev));
}

}  // namespace qtos
