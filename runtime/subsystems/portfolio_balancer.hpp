#pragma once
/// @file The Portfolio Balancer AI (PBA): gross and net exposure, per-symbol and per-cluster caps (clusters from the
/// correlation of recent returns) and the policy's max open positions. It answers the portfolio check (a denial,
/// EXPOSURE_LIMIT / CLUSTER_LIMIT / MAX_OPEN_POSITIONS, in ENFORCED, when no useful part of an entry fits) and the sizing
/// hook (the entry cut to the headroom, from ADVISORY),
/// gives PAL its PortfolioGate for scale-ins, and on every QT_AI_PBA_REBALANCE_INTERVAL trims the positions that price
/// moves pushed over a limit (a partial take through the amplification hook, ENFORCED). docs/subsystems/PBA.md.

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/bus/events.hpp"
#include "runtime/config/config.hpp"
#include "runtime/exchange/exchange.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/subsystems/ai_subsystem.hpp"

namespace qtos {

/// The limits and the clustering of the PBA (QT_AI_PBA_*; docs/subsystems/PBA.md).
struct PbaOptions {
  double max_gross_exposure = 2.0;       ///< QT_AI_PBA_MAX_GROSS_EXPOSURE: sum of |notional|, multiple of equity
  double max_net_exposure = 1.5;         ///< QT_AI_PBA_MAX_NET_EXPOSURE: |long - short| notional, multiple of equity
  double max_symbol_exposure_pct = 20;   ///< QT_AI_PBA_MAX_SYMBOL_EXPOSURE_PCT: one symbol, percent of equity
  double max_cluster_exposure_pct = 40;  ///< QT_AI_PBA_MAX_CLUSTER_EXPOSURE_PCT: one cluster, percent of equity
  double cluster_correlation = 0.7;      ///< QT_AI_PBA_CLUSTER_CORRELATION: correlation that links two symbols
  std::int32_t correlation_window = 64;  ///< QT_AI_PBA_CORRELATION_WINDOW: bars of returns the correlation uses
  std::int64_t rebalance_interval_s = 600;  ///< QT_AI_PBA_REBALANCE_INTERVAL: seconds between rebalances
  double min_scale = 0.25;   ///< room for less than this fraction of an entry: denied (ENFORCED); ADVISORY cuts no lower
  double trim_target = 0.9;  ///< a trim brings the exposure back to this fraction of its limit

  /// The options from the configuration (QT_AI_PBA_*, QT_AI_PBA_REBALANCE_INTERVAL).
  static PbaOptions from_config(const Config& config);
};

/// One exposure against its limit, as the portfolio check names it.
struct PbaBreach {
  DenyReason reason = DenyReason::exposure_limit;  ///< EXPOSURE_LIMIT, CLUSTER_LIMIT or MAX_OPEN_POSITIONS
  double fit = 1;    ///< the fraction of the entry that keeps this limit (>= 1: all of it)
  std::string text;  ///< "BTCUSDT exposure 15% / 20% limit"
};

/// The Portfolio Balancer ("PBA"; QT_AI_PBA_ENABLED / QT_AI_PBA_MODE). Owner thread.
class PortfolioBalancer final : public AiSubsystem, public PortfolioGate {
 public:
  /// Mode from the configuration (OFF when disabled). `policy` (max open positions, read at every check so a policy
  /// update applies at once) and `exchange` (equity) must outlive it. Throws std::invalid_argument naming a bad option.
  PortfolioBalancer(EventBus& bus, const Config& config, const PolicyStore& policy, const Exchange& exchange, PbaOptions options,
                    std::string log_dir = "");
  /// As above with PbaOptions::from_config(config).
  PortfolioBalancer(EventBus& bus, const Config& config, const PolicyStore& policy, const Exchange& exchange, std::string log_dir = "");

  bool answers(Hook hook) const override;
  std::optional<CheckAnswer> portfolio_check(const TradeCandidate& c, const CheckAnswer& v, std::string& why) override;
  std::optional<SizingAnswer> position_sizing(const TradeCandidate& c, const SizingAnswer& v, std::string& why) override;
  std::optional<AmplificationAnswer> amplification_check(const PositionSnapshot& p, const AmplificationAnswer& v, std::string& why) override;
  bool add_allowed(const Symbol& symbol, double add_notional, std::string& why) const override;

  /// The tightest limit an entry of `notional` (quote, > 0) on `symbol` at `side` meets (fit >= 1: none binds).
  PbaBreach tightest(const Symbol& symbol, Side side, double notional) const;
  /// The size the check assumes for an entry whose candidate carries none (the executor checks before it sizes): the
  /// average notional of recent entries, or equity / max open positions before the first.
  double entry_estimate() const;
  /// Recomputes the correlation clusters now (the rebalance timer does it every correlation_window / 4 bars).
  void clusters_update();
  /// Runs the rebalance now: decides the trims of positions over a limit (each once until it fills).
  void rebalance();
  /// The cluster of `symbol` (its index), or -1 when it is alone or unknown.
  std::int32_t cluster_of(const Symbol& symbol) const;
  /// The symbols of every cluster of two or more, each sorted, clusters in order of their first symbol.
  std::vector<std::vector<std::string>> clusters() const;
  /// The trim decided for `symbol` and not yet issued (0: none).
  double trim_pending(const Symbol& symbol) const;
  /// Gross notional of the open positions (quote, at the last close).
  double gross_notional() const;
  /// Trims decided so far.
  std::uint64_t trims() const { return trims_decided_; }

 protected:
  void on_start() override;

 private:
  struct Sym {
    Symbol symbol;
    double qty = 0;          // signed: > 0 long, < 0 short (from the fills)
    double mark = 0;         // last close
    double prev_close = 0;
    std::vector<float> ret;          // returns by bar row (ring of correlation_window)
    std::vector<std::int64_t> stamp; // the bar sequence number of each row
    std::int32_t cluster = -1;
    double reserved = 0;     // signed quote of an entry the check let through and that has not filled yet
    std::int64_t reserved_seq = 0;  // the bar sequence number when it was reserved
    double trim = 0;         // a trim decided, not yet issued (fraction of the position)
    bool trim_issued = false;
    std::int64_t trim_seq = 0;  // the bar sequence number when it was issued (it waits for a fill, or expires)
    std::string trim_reason;
    bool listed = false;     // in active_
  };

  Sym& sym(const Symbol& s);
  const Sym* find(const Symbol& s) const;
  double reserved_of(const Sym& s) const;  // 0 once expired
  double equity() const;
  double symbol_limit() const;
  double cluster_limit() const;
  void note_once(const std::string& kind, const std::string& text, bool applied, const Symbol& symbol);
  void on_bar(const MarketBarClosed& b);
  void on_fill(const Symbol& symbol, Side side, double qty);
  void activate(Sym& s);

  const Config& config_;
  mutable PolicyView policy_;
  const Exchange& exchange_;
  PbaOptions options_;
  std::vector<Sym> syms_;
  std::unordered_map<Symbol, std::uint32_t, FixedStringHash> index_;
  std::vector<std::uint32_t> active_;  // symbols with a position or a reservation, once each (flat ones pruned)
  std::vector<std::vector<std::uint32_t>> clusters_;  // clusters of two or more
  TimeNs bar_time_ = -1;
  std::int64_t bar_seq_ = -1;
  std::int64_t clusters_at_seq_ = -1;
  std::int64_t rebalanced_at_seq_ = -1;
  double entry_avg_ = 0;
  std::uint64_t book_version_ = 1;  // +1 per bar and fill: the venue's equity may have moved
  mutable std::uint64_t equity_version_ = 0;
  mutable double equity_cache_ = 0;
  std::string clusters_text_;
  std::set<std::string> noted_;  // limit kinds already logged in this rebalance interval
  std::uint64_t trims_decided_ = 0;
};

}  // namespace qtos
