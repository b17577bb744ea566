// The Portfolio Balancer: exposure limits on the book the fills build, clusters from return correlation, trims.
#include "runtime/subsystems/portfolio_balancer.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <numeric>
#include <stdexcept>

namespace qtos {

namespace {

std::string pct0(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0f%%", v);
  return b;
}

}  // namespace

PbaOptions PbaOptions::from_config(const Config& c) {
  PbaOptions o;
  o.max_gross_exposure = c.pba_max_gross_exposure;
  o.max_net_exposure = c.pba_max_net_exposure;
  o.max_symbol_exposure_pct = c.pba_max_symbol_exposure_pct;
  o.max_cluster_exposure_pct = c.pba_max_cluster_exposure_pct;
  o.cluster_correlation = c.pba_cluster_correlation;
  o.correlation_window = static_cast<std::int32_t>(c.pba_correlation_window);
  o.rebalance_interval_s = c.pba_rebalance_interval;
  return o;
}

PortfolioBalancer::PortfolioBalancer(EventBus& bus, const Config& config, const PolicyStore& policy, const Exchange& exchange,
                                     PbaOptions options, std::string log_dir)
    : AiSubsystem("PBA", config.subsystem(Subsystem::pba).active() ? config.subsystem(Subsystem::pba).mode : SubsystemMode::off, bus,
                  std::move(log_dir)),
      config_(config),
      policy_(policy),
      exchange_(exchange),
      options_(options) {
  auto positive = [](double v, const char* name) {
    if (!(v > 0 && std::isfinite(v))) throw std::invalid_argument(std::string("PBA: ") + name + " is " + std::to_string(v) + "; expected > 0");
  };
  positive(options_.max_gross_exposure, "max_gross_exposure");
  positive(options_.max_net_exposure, "max_net_exposure");
  positive(options_.max_symbol_exposure_pct, "max_symbol_exposure_pct");
  positive(options_.max_cluster_exposure_pct, "max_cluster_exposure_pct");
  positive(static_cast<double>(options_.rebalance_interval_s), "rebalance_interval_s");
  if (!(options_.cluster_correlation > 0 && options_.cluster_correlation <= 1))
    throw std::invalid_argument("PBA: cluster_correlation is " + std::to_string(options_.cluster_correlation) + "; expected (0, 1]");
  if (options_.correlation_window < 8)
    throw std::invalid_argument("PBA: correlation_window is " + std::to_string(options_.correlation_window) + "; expected >= 8");
  if (!(options_.min_scale > 0 && options_.min_scale <= 1) || !(options_.trim_target > 0 && options_.trim_target <= 1))
    throw std::invalid_argument("PBA: min_scale and trim_target must lie in (0, 1]");
}

PortfolioBalancer::PortfolioBalancer(EventBus& bus, const Config& config, const PolicyStore& policy, const Exchange& exchange,
                                     std::string log_dir)
    : PortfolioBalancer(bus, config, policy, exchange, PbaOptions::from_config(config), std::move(log_dir)) {}

bool PortfolioBalancer::answers(Hook hook) const {
  return hook == Hook::pre_trade_portfolio_check || hook == Hook::pre_trade_position_sizing || hook == Hook::post_trade_amplification_check;
}

void PortfolioBalancer::on_start() {
  subscribe<MarketBarClosed>([this](const MarketBarClosed& b) { on_bar(b); });
  subscribe<OrderFilled>([this](const OrderFilled& f) { on_fill(f.symbol, f.side, f.qty); });
  subscribe<PositionOpened>([this](const PositionOpened& p) {
    const double n = p.qty * p.entry_price;
    if (n > 0) entry_avg_ = entry_avg_ > 0 ? 0.8 * entry_avg_ + 0.2 * n : n;
  });
  subscribe<PositionClosed>([this](const PositionClosed& p) {
    Sym& s = sym(p.symbol);
    s.qty = 0;  // closed: no residue of rounding
    s.trim = 0;
    s.trim_issued = false;
  });
  // An entry that will not fill frees its reservation.
  subscribe<OrderDenied>([this](const OrderDenied& d) {
    if (const Sym* s = find(d.symbol)) sym(s->symbol).reserved = 0;
  });
  subscribe<OrderRejected>([this](const OrderRejected& r) {
    if (const Sym* s = find(r.symbol)) sym(s->symbol).reserved = 0;
  });
  every(options_.rebalance_interval_s * kNsPerSecond, [this](TimeNs) {
    // Timers catch up on a simulated clock: work only when bars arrived since the last run.
    if (bar_seq_ == rebalanced_at_seq_) return;
    rebalanced_at_seq_ = bar_seq_;
    if (clusters_at_seq_ < 0 || bar_seq_ - clusters_at_seq_ >= std::max(1, options_.correlation_window / 4)) clusters_update();
    rebalance();
  });
}

PortfolioBalancer::Sym& PortfolioBalancer::sym(const Symbol& s) {
  auto [it, added] = index_.try_emplace(s, static_cast<std::uint32_t>(syms_.size()));
  if (added) {
    Sym n;
    n.symbol = s;
    n.ret.assign(static_cast<std::size_t>(options_.correlation_window), 0.0f);
    n.stamp.assign(static_cast<std::size_t>(options_.correlation_window), -1);
    syms_.push_back(std::move(n));
  }
  return syms_[it->second];
}

const PortfolioBalancer::Sym* PortfolioBalancer::find(const Symbol& s) const {
  const auto it = index_.find(s);
  return it == index_.end() ? nullptr : &syms_[it->second];
}

double PortfolioBalancer::reserved_of(const Sym& s) const {
  // An entry fills at the next bar's open; one that has not filled within two bars is not coming.
  return s.reserved != 0 && bar_seq_ - s.reserved_seq <= 2 ? s.reserved : 0.0;
}

double PortfolioBalancer::equity() const {
  // The venue's equity moves with marks and fills only: asked once per bar or fill, not once per check.
  if (equity_version_ != book_version_) {
    equity_cache_ = exchange_.equity();
    equity_version_ = book_version_;
  }
  return equity_cache_;
}
double PortfolioBalancer::symbol_limit() const { return options_.max_symbol_exposure_pct / 100.0 * equity(); }
double PortfolioBalancer::cluster_limit() const { return options_.max_cluster_exposure_pct / 100.0 * equity(); }

void PortfolioBalancer::on_bar(const MarketBarClosed& b) {
  ++book_version_;
  if (b.open_time > bar_time_) {  // a new bar time: the next row of every symbol's return ring
    bar_time_ = b.open_time;
    ++bar_seq_;
  }
  Sym& s = sym(b.symbol);
  if (s.prev_close > 0 && b.close > 0) {
    const auto row = static_cast<std::size_t>(bar_seq_ % options_.correlation_window);
    s.ret[row] = static_cast<float>(b.close / s.prev_close - 1.0);
    s.stamp[row] = bar_seq_;
  }
  if (b.close > 0) s.prev_close = s.mark = b.close;
}

void PortfolioBalancer::on_fill(const Symbol& symbol, Side side, double qty) {
  ++book_version_;
  Sym& s = sym(symbol);
  s.qty += side == Side::buy ? qty : -qty;
  if (std::abs(s.qty) * std::max(1.0, s.mark) < 1e-9) s.qty = 0;
  s.reserved = 0;  // filled: the position counts now
  s.trim = 0;      // a trim that filled (or any fill) is done; the next rebalance looks again
  s.trim_issued = false;
  if (s.qty != 0) activate(s);
}

void PortfolioBalancer::activate(Sym& s) {
  if (s.listed) return;
  s.listed = true;
  active_.push_back(index_.at(s.symbol));
}

double PortfolioBalancer::entry_estimate() const {
  if (entry_avg_ > 0) return entry_avg_;
  const std::int64_t n = std::max<std::int64_t>(1, policy_.get().max_open_positions);
  return equity() / static_cast<double>(n);
}

double PortfolioBalancer::gross_notional() const {
  double g = 0;
  for (std::uint32_t i : active_) g += std::abs(syms_[i].qty) * syms_[i].mark;
  return g;
}

std::int32_t PortfolioBalancer::cluster_of(const Symbol& symbol) const {
  const Sym* s = find(symbol);
  return s == nullptr ? -1 : s->cluster;
}

std::vector<std::vector<std::string>> PortfolioBalancer::clusters() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& c : clusters_) {
    std::vector<std::string> names;
    for (std::uint32_t i : c) names.push_back(syms_[i].symbol.str());
    std::sort(names.begin(), names.end());
    out.push_back(std::move(names));
  }
  std::sort(out.begin(), out.end());
  return out;
}

double PortfolioBalancer::trim_pending(const Symbol& symbol) const {
  const Sym* s = find(symbol);
  return s != nullptr && !s->trim_issued ? s->trim : 0.0;
}

PbaBreach PortfolioBalancer::tightest(const Symbol& symbol, Side side, double notional) const {
  PbaBreach best;
  best.fit = std::numeric_limits<double>::infinity();
  const double eq = equity();
  if (!(eq > 0) || !(notional > 0)) return PbaBreach{DenyReason::exposure_limit, 1, ""};
  const double sign = side == Side::buy ? 1.0 : -1.0;
  const Sym* self = find(symbol);
  const std::int32_t cluster = self != nullptr ? self->cluster : -1;
  double gross = 0, net = 0, cluster_sum = 0, own = 0;
  for (std::uint32_t i : active_) {
    const Sym& s = syms_[i];
    const double n = s.qty * s.mark + reserved_of(s);
    gross += std::abs(n);
    net += n;
    if (cluster >= 0 && s.cluster == cluster) cluster_sum += std::abs(n);
    if (&s == self) own = n;
  }
  // Each limit: what it allows more, over what the entry adds to it.
  auto consider = [&](DenyReason reason, double current, double limit, double added, const std::string& what) {
    if (!(added > 0)) return;  // the entry does not raise this exposure
    const double fit = std::max(0.0, limit - current) / added;
    if (fit < best.fit) {
      best.fit = fit;
      best.reason = reason;
      best.text = what + " exposure " + pct0(100 * current / eq) + " / " + pct0(100 * limit / eq) + " limit (entry ~" +
                  pct0(100 * added / eq) + ")";
    }
  };
  consider(DenyReason::exposure_limit, std::abs(own), options_.max_symbol_exposure_pct / 100.0 * eq, std::abs(own + sign * notional) - std::abs(own),
           symbol.str());
  consider(DenyReason::exposure_limit, gross, options_.max_gross_exposure * eq, notional, "gross");
  consider(DenyReason::exposure_limit, std::abs(net), options_.max_net_exposure * eq, std::abs(net + sign * notional) - std::abs(net), "net");
  if (cluster >= 0) {
    const auto& members = clusters_[static_cast<std::size_t>(cluster)];
    consider(DenyReason::cluster_limit, cluster_sum, options_.max_cluster_exposure_pct / 100.0 * eq, std::abs(own + sign * notional) - std::abs(own),
             "cluster " + syms_[members.front()].symbol.str() + "+" + std::to_string(members.size() - 1));
  }
  if (!std::isfinite(best.fit)) best.fit = 1e9;
  return best;
}

std::optional<CheckAnswer> PortfolioBalancer::portfolio_check(const TradeCandidate& c, const CheckAnswer&, std::string& why) {
  if (!(equity() > 0)) return std::nullopt;
  const Sym* s = find(c.symbol);
  // Max open positions (the policy's, read now): positions plus entries on their way.
  if (s == nullptr || (s->qty == 0 && reserved_of(*s) == 0)) {
    std::int64_t open = 0;
    for (std::uint32_t i : active_) open += syms_[i].qty != 0 || reserved_of(syms_[i]) != 0;
    const std::int64_t max_open = policy_.get().max_open_positions;
    if (open >= max_open) {
      why = "open positions " + std::to_string(open) + " / " + std::to_string(max_open) + " limit";
      note_once("MAX_OPEN_POSITIONS", (hard() ? "Denying entries: " : "Would deny entries: ") + why, hard(), c.symbol);
      return CheckAnswer{false, DenyReason::max_open_positions, 1.0};
    }
  }
  // The executor checks before it sizes: the check decides only whether a useful part of a typical entry still fits
  // (the sizing hook then cuts the entry to the exact headroom, so nothing is scaled twice).
  const double estimate = c.quote_qty > 0 ? c.quote_qty : entry_estimate();
  const PbaBreach b = tightest(c.symbol, c.side, estimate);
  if (b.fit >= options_.min_scale) return std::nullopt;
  why = b.text;
  note_once(std::string(enum_name(b.reason)), (hard() ? "Denying entries: " : "Would deny entries: ") + b.text, hard(), c.symbol);
  return CheckAnswer{false, b.reason, 1.0};
}

std::optional<SizingAnswer> PortfolioBalancer::position_sizing(const TradeCandidate& c, const SizingAnswer& v, std::string& why) {
  const double q = v.quote_qty;
  if (!(q > 0) || !(equity() > 0)) return std::nullopt;
  Sym& s = sym(c.symbol);
  const PbaBreach b = tightest(c.symbol, c.side, q);
  std::optional<SizingAnswer> answer;
  double sent = q;  // what the executor goes on with, as the mode applies the answer
  if (b.fit < 1) {
    // ENFORCED: exactly the headroom; ADVISORY, which denies nothing: never below min_scale of the entry.
    const double fit = hard() ? b.fit : std::max(b.fit, options_.min_scale);
    answer = SizingAnswer{q * fit};
    if (soft()) sent = q * fit;
    why = b.text;
    note_once(std::string(enum_name(b.reason)) + "_SIZE", (soft() ? "Cutting entries to fit: " : "Would cut entries to fit: ") + b.text, soft(),
              c.symbol);
  }
  if (sent > 0) {  // the entry is on its way: it counts until it fills (or two bars pass)
    s.reserved = (c.side == Side::buy ? 1.0 : -1.0) * sent;
    s.reserved_seq = bar_seq_;
    activate(s);
  }
  return answer;
}

bool PortfolioBalancer::add_allowed(const Symbol& symbol, double add_notional, std::string& why) const {
  if (!(add_notional > 0)) return true;
  const Sym* s = find(symbol);
  const Side side = s != nullptr && s->qty < 0 ? Side::sell : Side::buy;  // a scale-in adds to the position's side
  const PbaBreach b = tightest(symbol, side, add_notional);
  if (b.fit >= 1) return true;
  why = b.text;
  return false;
}

void PortfolioBalancer::note_once(const std::string& kind, const std::string& text, bool applied, const Symbol& symbol) {
  if (!noted_.insert(kind).second) return;  // once per kind and rebalance interval: the pipeline logs each check
  decide("LIMIT", text, applied, symbol);
}

std::optional<AmplificationAnswer> PortfolioBalancer::amplification_check(const PositionSnapshot& p, const AmplificationAnswer& v,
                                                                         std::string& why) {
  const auto it = index_.find(p.symbol);
  Sym* s = it == index_.end() ? nullptr : &syms_[it->second];
  if (s != nullptr && s->trim > 0 && !s->trim_issued) {
    s->trim_issued = true;
    s->trim_seq = bar_seq_;
    AmplificationAnswer a = v;
    a.take_partial = std::max(v.take_partial, s->trim);
    a.scale_in = 0;  // protective beats enhancing: no add while trimming
    why = s->trim_reason;
    return a;
  }
  if (v.scale_in > 0) {  // a scale-in asked before PBA (composition order puts PAL after PBA; PAL asks add_allowed)
    std::string limit;
    if (!add_allowed(p.symbol, v.scale_in * std::abs(p.qty) * p.mark_price, limit)) {
      AmplificationAnswer a = v;
      a.scale_in = 0;
      why = "no scale-in: " + limit;
      return a;
    }
  }
  return std::nullopt;
}

void PortfolioBalancer::clusters_update() {
  clusters_at_seq_ = bar_seq_;
  const auto w = static_cast<std::size_t>(options_.correlation_window);
  // Each symbol's returns over the window, centred and scaled to unit length (missing rows 0): the correlation of two
  // symbols is then the dot product of their vectors.
  std::vector<std::uint32_t> eligible;
  std::vector<float> z;
  for (std::uint32_t i = 0; i < syms_.size(); ++i) {
    syms_[i].cluster = -1;
    const Sym& s = syms_[i];
    std::size_t n = 0;
    double sum = 0;
    for (std::size_t r = 0; r < w; ++r)
      if (s.stamp[r] >= 0 && bar_seq_ - s.stamp[r] < static_cast<std::int64_t>(w)) ++n, sum += s.ret[r];
    if (n < w / 2) continue;  // too little history to say
    const double mean = sum / static_cast<double>(n);
    std::vector<float> v(w, 0.0f);
    double ss = 0;
    for (std::size_t r = 0; r < w; ++r)
      if (s.stamp[r] >= 0 && bar_seq_ - s.stamp[r] < static_cast<std::int64_t>(w)) {
        v[r] = static_cast<float>(s.ret[r] - mean);
        ss += static_cast<double>(v[r]) * v[r];
      }
    if (!(ss > 0)) continue;
    const float inv = static_cast<float>(1.0 / std::sqrt(ss));
    for (float& x : v) x *= inv;
    eligible.push_back(i);
    z.insert(z.end(), v.begin(), v.end());
  }
  // Threshold clustering: symbols linked when their correlation reaches the threshold, clusters the linked groups
  // (union-find; single linkage).
  const std::size_t m = eligible.size();
  std::vector<std::size_t> parent(m);
  std::iota(parent.begin(), parent.end(), 0);
  auto root = [&](std::size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const float threshold = static_cast<float>(options_.cluster_correlation);
  for (std::size_t a = 0; a < m; ++a) {
    const float* za = &z[a * w];
    for (std::size_t b = a + 1; b < m; ++b) {
      const float* zb = &z[b * w];
      // Eight partial sums: the compiler vectorises them (a single float sum may not be reordered).
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      std::size_t r = 0;
      for (; r + 8 <= w; r += 8)
        for (std::size_t k = 0; k < 8; ++k) part[k] += za[r + k] * zb[r + k];
      float dot = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
      for (; r < w; ++r) dot += za[r] * zb[r];
      if (dot >= threshold) parent[root(a)] = root(b);
    }
  }
  std::vector<std::vector<std::uint32_t>> groups(m);
  for (std::size_t a = 0; a < m; ++a) groups[root(a)].push_back(eligible[a]);
  clusters_.clear();
  for (auto& g : groups)
    if (g.size() >= 2) {
      for (std::uint32_t i : g) syms_[i].cluster = static_cast<std::int32_t>(clusters_.size());
      clusters_.push_back(std::move(g));
    }
  // Log the clustering when it changes.
  std::string text;
  std::size_t largest = 0;
  for (const auto& c : clusters()) {
    text += (text.empty() ? "" : "; ") + std::to_string(c.size()) + ": " + c.front() + (c.size() > 1 ? ", " + c[1] : "") + (c.size() > 2 ? ", ..." : "");
    largest = std::max(largest, c.size());
  }
  if (text != clusters_text_) {
    clusters_text_ = text;
    decide("CLUSTER", std::to_string(clusters_.size()) + " correlation clusters (>= " + std::to_string(options_.cluster_correlation).substr(0, 4) +
                          ", largest " + std::to_string(largest) + " symbols)" + (text.empty() ? "" : ": " + text),
           soft());
  }
}

void PortfolioBalancer::rebalance() {
  noted_.clear();
  // Drop what is no longer active (flat, no reservation), and trims that never filled.
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [&](std::uint32_t i) {
                                 Sym& s = syms_[i];
                                 if (s.qty != 0 || reserved_of(s) != 0) return false;
                                 s.listed = false;
                                 return true;
                               }),
                active_.end());
  for (std::uint32_t i : active_) {
    Sym& s = syms_[i];
    if (s.trim_issued && bar_seq_ - s.trim_seq > 2) s.trim = 0, s.trim_issued = false;
  }
  const double eq = equity();
  if (!(eq > 0) || active_.empty()) return;
  // Each position's notional, less a trim already decided (it is on its way).
  std::vector<double> n(syms_.size(), 0.0);
  double gross = 0, net = 0;
  for (std::uint32_t i : active_) {
    const Sym& s = syms_[i];
    n[i] = s.qty * s.mark * (1.0 - s.trim);
    gross += std::abs(n[i]);
    net += n[i];
  }
  std::map<std::uint32_t, std::pair<double, std::string>> cut;  // symbol -> (quote to cut, why)
  auto plan = [&](std::vector<std::uint32_t> members, double excess, const std::string& why, double side) {
    // The largest positions of the group first, until the excess is gone.
    std::sort(members.begin(), members.end(), [&](std::uint32_t a, std::uint32_t b) { return std::abs(n[a]) > std::abs(n[b]) || (std::abs(n[a]) == std::abs(n[b]) && a < b); });
    for (std::uint32_t i : members) {
      if (excess <= 0) break;
      if (side != 0 && n[i] * side <= 0) continue;
      if (syms_[i].trim_issued) continue;  // a trim on its way: wait for its fill
      const double take = std::min(excess, std::abs(n[i]) - cut[i].first);
      if (take <= 0) continue;
      cut[i].first += take;
      if (cut[i].second.empty()) cut[i].second = why;
      excess -= take;
    }
  };
  const double sym_lim = symbol_limit();
  for (std::uint32_t i : active_)
    if (std::abs(n[i]) > sym_lim)
      plan({i}, std::abs(n[i]) - options_.trim_target * sym_lim,
           syms_[i].symbol.str() + " exposure " + pct0(100 * std::abs(n[i]) / eq) + " / " + pct0(100 * sym_lim / eq) + " limit", 0);
  for (const auto& c : clusters_) {
    double sum = 0;
    std::vector<std::uint32_t> held;
    for (std::uint32_t i : c)
      if (n[i] != 0) sum += std::abs(n[i]), held.push_back(i);
    if (sum > cluster_limit())
      plan(held, sum - options_.trim_target * cluster_limit(),
           "cluster " + syms_[c.front()].symbol.str() + "+" + std::to_string(c.size() - 1) + " exposure " + pct0(100 * sum / eq) + " / " +
               pct0(100 * cluster_limit() / eq) + " limit",
           0);
  }
  if (gross > options_.max_gross_exposure * eq)
    plan(active_, gross - options_.trim_target * options_.max_gross_exposure * eq,
         "gross exposure " + pct0(100 * gross / eq) + " / " + pct0(100 * options_.max_gross_exposure) + " limit", 0);
  if (std::abs(net) > options_.max_net_exposure * eq)
    plan(active_, std::abs(net) - options_.trim_target * options_.max_net_exposure * eq,
         "net exposure " + pct0(100 * std::abs(net) / eq) + " / " + pct0(100 * options_.max_net_exposure) + " limit", net > 0 ? 1.0 : -1.0);
  for (const auto& [i, c] : cut) {
    Sym& s = syms_[i];
    const double whole = std::abs(s.qty * s.mark);
    if (!(whole > 0) || !(c.first > 0)) continue;
    // The fraction of the position as it stands (a trim already on its way included).
    const double fraction = std::min(1.0, s.trim + c.first / whole);
    s.trim = fraction;
    s.trim_issued = false;
    s.trim_reason = c.second;
    ++trims_decided_;
    decide("TRIM", std::string(hard() ? "Trimming " : "Would trim ") + s.symbol.str() + " by " + pct0(100 * fraction) + ": " + c.second, hard(),
           s.symbol);
  }
}

}  // namespace qtos
