#include "runtime/exchange/paper_exchange.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "cpu/kernels/indicators.hpp"
#include "cpu/kernels/strategy.hpp"
#include "runtime/exchange/order_checkpoint.hpp"
#include "runtime/util/checkpoint.hpp"

namespace qtos {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
// Quantities closer than this (relative) are equal: the binary noise of summed decimal fills, never a real shortfall.
constexpr double kDust = 1e-9;
// Funding is charged at 00:00, 08:00 and 16:00 UTC.
constexpr TimeNs kFundingPeriod = 8LL * 3600 * kNsPerSecond;

// Binance-style venue codes.
constexpr std::int32_t kCodeBadValue = -1013;       // an invalid value, or a filter failure
constexpr std::int32_t kCodeMandatory = -1102;      // a parameter missing, malformed or not allowed here
constexpr std::int32_t kCodeInvalidSymbol = -1121;  // not listed
constexpr std::int32_t kCodeBalance = -2010;        // spot: not enough to buy or to sell
constexpr std::int32_t kCodeUnknownOrder = -2011;   // cancel of an unknown or final order
constexpr std::int32_t kCodeMargin = -2019;         // perpetuals: not enough available margin
constexpr std::int32_t kCodeLeverage = -4028;       // leverage out of range
constexpr std::int32_t kCodeDuplicate = -4116;      // order id or client order id already used

constexpr const char* kMsgBalance = "Account has insufficient balance for requested action.";


std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.12g", x);
  return buf;
}

SubmitResult reject(std::int32_t code, std::string message) {
  return SubmitResult{SubmitOutcome::rejected, code, std::move(message)};
}

std::string mandatory(std::string_view field) {
  return "Mandatory parameter '" + std::string(field) + "' was not sent, was empty/null, or malformed.";
}

std::string invalid(std::string_view field, double v) {
  return "Invalid " + std::string(field) + ": " + number_text(v) + " (expected a finite number > 0).";
}

bool positive(double v) { return std::isfinite(v) && v > 0; }

// Throws std::invalid_argument naming the configuration field when `ok` is false.
void config_check(bool ok, const std::string& field, double v, const char* expected) {
  if (!ok)
    throw std::invalid_argument("PaperExchangeConfig." + field + " = " + number_text(v) +
                                " is out of range: expected " + expected);
}

void filters_check(const SymbolFilters& f, const std::string& where) {
  const std::pair<const char*, double> fields[] = {{"tick_size", f.tick_size},
                                                   {"step_size", f.step_size},
                                                   {"min_qty", f.min_qty},
                                                   {"max_qty", f.max_qty},
                                                   {"min_notional", f.min_notional}};
  for (const auto& [name, v] : fields)
    config_check(std::isfinite(v) && v >= 0, where + "." + name, v, "a finite value >= 0");
}

void config_validate(const PaperExchangeConfig& c) {
  if (c.market != MarketKind::spot && c.market != MarketKind::linear_perpetual)
    throw std::invalid_argument("PaperExchangeConfig.market: expected " + enum_names_joined<MarketKind>());
  if (c.quote_asset.empty())
    throw std::invalid_argument("PaperExchangeConfig.quote_asset: expected an asset name, e.g. USDT");
  config_check(positive(c.initial_balance), "initial_balance", c.initial_balance, "a finite value > 0");
  config_check(c.taker_fee >= 0 && c.taker_fee < 0.1, "taker_fee", c.taker_fee, "[0, 0.1)");
  config_check(c.maker_fee >= 0 && c.maker_fee < 0.1, "maker_fee", c.maker_fee, "[0, 0.1)");
  config_check(c.slippage >= 0 && c.slippage < 0.1, "slippage", c.slippage, "[0, 0.1)");
  config_check(c.slippage_spread >= 0 && c.slippage_spread <= 10, "slippage_spread", c.slippage_spread, "[0, 10]");
  config_check(std::isfinite(c.impact) && c.impact >= 0, "impact", c.impact, "a finite value >= 0");
  config_check(c.participation >= 0 && c.participation <= 1, "participation", c.participation, "[0, 1]");
  config_check(c.maintenance_margin >= 0 && c.maintenance_margin < 0.5, "maintenance_margin", c.maintenance_margin,
               "[0, 0.5)");
  config_check(std::isfinite(c.max_leverage) && c.max_leverage >= 1, "max_leverage", c.max_leverage,
               "a finite value >= 1");
  config_check(c.funding_rate_8h > -0.1 && c.funding_rate_8h < 0.1, "funding_rate_8h", c.funding_rate_8h,
               "(-0.1, 0.1)");
  filters_check(c.filters, "filters");
  for (const auto& [symbol, f] : c.symbol_filters) filters_check(f, "symbol_filters[" + symbol + "]");
}

// floor(a / b) for b > 0, also for negative a.
TimeNs floor_div(TimeNs a, TimeNs b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

struct PaperExchange::Impl {
  /// One symbol's net position (spot: the base holding, never negative).
  struct Position {
    double qty = 0;           // signed base quantity
    double entry = 0;         // average entry price
    double leverage = 1;      // of the last fill that opened or increased it
    bool from_close = false;  // opened or increased at this bar's close: only the close can liquidate it this bar
  };
  /// Everything the venue keeps per symbol; created on the symbol's first bar.
  struct Book {
    Symbol symbol;
    std::uint32_t index = 0;
    bool listed = false;
    std::uint64_t bars = 0;  // bars seen (a market order fills on a bar that started after its submission)
    TimeNs last_open = 0;
    double last_close = 0;
    double spread = kNaN;  // the spread proxy after the last bar (NaN: undefined)
    kernels::SpreadState<double> spread_state;
    Position pos;
    std::vector<std::uint64_t> working;  // working orders in submission order
    SymbolFilters filters;
  };
  /// An order as the venue holds it.
  struct Order {
    OrderState state;
    std::uint32_t book = 0;
    std::uint64_t submitted_bar = 0;  // the symbol's bar count at submission
    double remaining = 0;             // base quantity still to fill
    bool quote_pending = false;       // quote-sized and not yet filled: the base quantity is fixed at the first fill
    bool triggered = false;           // a stop or target whose rest now fills as a market order
    double reserve = 0;               // quote held for it (spot funds, or perpetual margin and fee)
  };

  PaperExchangeConfig cfg;
  Clock& clock;
  kernels::BacktestCosts costs;
  bool spot;
  std::deque<Book> books;  // a deque: books never move, so a Book& survives a new symbol
  std::unordered_map<Symbol, std::uint32_t, FixedStringHash> book_index;
  std::unordered_map<std::uint64_t, Order> orders;  // every accepted order, final ones too (query)
  std::unordered_set<std::string> client_ids;
  static constexpr std::size_t kFinalKept = 200'000;  // final orders a venue still answers for
  std::deque<std::uint64_t> final_ids;                  // final orders, oldest first
  std::vector<std::uint32_t> open;     // books with a position, ascending
  std::vector<std::uint64_t> scratch;  // one phase's snapshot of a book's working orders
  std::size_t working_count = 0;
  double cash = 0;      // the backtester's cash: initial + sum of -(signed qty x price + fee) + funding
  double reserved = 0;  // quote held by working orders
  std::uint64_t fill_seq = 0, submits = 0;
  ExchangeListener* listener = nullptr;
  bool in_bar = false;

  Impl(PaperExchangeConfig c, Clock& k) : cfg(std::move(c)), clock(k), spot(cfg.market == MarketKind::spot) {
    costs.fee = cfg.taker_fee;
    costs.slippage = cfg.slippage;
    costs.slippage_spread = cfg.slippage_spread;
    cash = cfg.initial_balance;
  }

  Book* book_find(const Symbol& s) {
    const auto it = book_index.find(s);
    return it == book_index.end() ? nullptr : &books[it->second];
  }
  const Book* book_find(const Symbol& s) const {
    const auto it = book_index.find(s);
    return it == book_index.end() ? nullptr : &books[it->second];
  }
  Book& book_get(const Symbol& s) {
    if (Book* k = book_find(s)) return *k;
    const auto index = static_cast<std::uint32_t>(books.size());
    Book& k = books.emplace_back();
    k.symbol = s;
    k.index = index;
    k.spread_state.init(kernels::IndicatorParams{kernels::kStrategySpreadPeriod, 26, 9, 2.0});
    const auto f = cfg.symbol_filters.find(s.str());
    k.filters = f == cfg.symbol_filters.end() ? cfg.filters : f->second;
    k.working.reserve(8);
    book_index.emplace(s, index);
    return k;
  }

  Order* working_order(std::uint64_t id) {
    const auto it = orders.find(id);
    return it == orders.end() || order_status_final(it->second.state.status) ? nullptr : &it->second;
  }

  // --- accounts ---------------------------------------------------------------------------------------------------

  double liquidation_price(const Position& p) const {
    const double m = cfg.maintenance_margin;
    return p.qty > 0 ? p.entry * (1 - 1 / p.leverage + m) : p.entry * (1 + 1 / p.leverage - m);
  }
  double position_margin(const Position& p) const { return spot ? 0.0 : std::abs(p.qty) * p.entry / p.leverage; }
  /// Quote balance of the account: spot cash, or the perpetual wallet (cash plus the entry value of the positions).
  double wallet() const {
    if (spot) return cash;
    double w = cash;
    for (std::uint32_t i : open) w += books[i].pos.qty * books[i].pos.entry;
    return w;
  }
  double used_margin() const {
    double m = 0;
    for (std::uint32_t i : open) m += position_margin(books[i].pos);
    return m;
  }
  /// What a new order may use: spot cash not held by orders; perpetual wallet less position and order margin.
  double available() const { return spot ? cash - reserved : wallet() - used_margin() - reserved; }
  double equity() const {
    double e = cash;
    for (std::uint32_t i : open) e += books[i].pos.qty * books[i].last_close;
    return e;
  }

  void position_index(const Book& k) {
    const auto it = std::lower_bound(open.begin(), open.end(), k.index);
    const bool listed = it != open.end() && *it == k.index;
    if (k.pos.qty != 0 && !listed) open.insert(it, k.index);
    if (k.pos.qty == 0 && listed) open.erase(it);
  }

  /// Moves the position by the signed fill `d` at `px`.
  void position_apply(Book& k, double d, double px, double leverage, bool at_close) {
    Position& p = k.pos;
    const double q0 = p.qty;
    if (q0 == 0 || (q0 > 0) == (d > 0)) {
      const double a0 = std::abs(q0), a = std::abs(d);
      p.entry = q0 == 0 ? px : (a0 * p.entry + a * px) / (a0 + a);
      p.qty = q0 + d;
      p.leverage = spot ? 1.0 : leverage;
      p.from_close = p.from_close || at_close;
    } else {
      double q1 = q0 + d;
      if (std::abs(q1) <= kDust * std::abs(q0)) q1 = 0;  // a close of the whole position up to binary noise
      if (q1 == 0) {
        p = Position{};
      } else if ((q1 > 0) == (q0 > 0)) {
        p.qty = q1;  // reduced: the entry price stands
      } else {
        p.qty = q1;  // reversed through zero (one-way mode): the rest opens at this price
        p.entry = px;
        p.leverage = leverage;
        p.from_close = at_close;
      }
    }
    position_index(k);
  }

  // --- order life -------------------------------------------------------------------------------------------------

  void release(Order& o) {
    reserved -= o.reserve;
    o.reserve = 0;
  }

  /// Ends a working order (state only; the caller reports it).
  void end(Order& o, Book& k, OrderStatus status, std::string reason, TimeNs ts) {
    o.state.status = status;
    o.state.reason = std::move(reason);
    o.state.updated = ts;
    release(o);
    const auto it = std::find(k.working.begin(), k.working.end(), o.state.request.order_id);
    QTOS_ASSERT(it != k.working.end(), "a working order is missing from its symbol's book");
    k.working.erase(it);
    if (--working_count == 0) reserved = 0;  // no drift of the running sum once nothing is held
    // A final order stays queryable (reconciliation) and its ids stay taken (duplicates) for the newest
    // kFinalKept final orders; older ones are forgotten, as a real venue forgets, so a long run keeps bounded memory.
    final_ids.push_back(o.state.request.order_id);
    if (final_ids.size() > kFinalKept) {
      const auto old = orders.find(final_ids.front());
      if (old != orders.end()) {
        client_ids.erase(old->second.state.request.client_order_id);
        orders.erase(old);
      }
      final_ids.pop_front();
    }
  }

  void expire(std::uint64_t id, Book& k, TimeNs ts, std::string reason) {
    Order& o = orders.at(id);
    end(o, k, OrderStatus::expired, std::move(reason), ts);
    const OrderState copy = o.state;
    if (listener) listener->on_order_update(copy);
  }

  void snapshot(const Book& k) { scratch.assign(k.working.begin(), k.working.end()); }

  /// Fills what it can of order `id` on bar `b` at `base` moved by the slippage `slip` (0 and maker for limit fills).
  void try_fill(std::uint64_t id, Book& k, const MarketBarClosed& b, double base, double slip, bool maker,
                bool at_close) {
    Order& o = orders.at(id);
    const OrderRequest& r = o.state.request;
    const bool buy = r.side == Side::buy;
    const TimeNs ts = b.open_time;
    // Reduce-only orders and spot sells only take from the position.
    const bool reducing = r.reduce_only || (spot && !buy);
    double room = kInf;
    if (reducing) {
      room = buy ? std::max(-k.pos.qty, 0.0) : std::max(k.pos.qty, 0.0);
      if (!(room > 0)) {
        expire(id, k, ts, r.reduce_only ? "reduce-only: no position to reduce" : "spot: no holding to sell");
        return;
      }
    }
    const bool impact_on = !maker && cfg.impact > 0 && b.volume > 0;
    const auto slip_for = [&](double q) { return impact_on ? slip + cfg.impact * q / b.volume : slip; };
    // The backtester's expressions: a buy pays open * (1 + slip), a sell gets open * (1 - slip).
    const auto price_at = [&](double s) { return maker ? base : (buy ? base * (1 + s) : base * (1 - s)); };
    const double cap = cfg.participation > 0 ? qty_to_step(cfg.participation * b.volume, k.filters.step_size) : kInf;
    if (o.quote_pending) {
      double px = price_at(slip);
      if (impact_on) px = price_at(slip_for(std::min({r.quote_qty / px, cap, room})));  // impact of the pre-impact size
      const double total = qty_to_step(r.quote_qty / px, k.filters.step_size);
      if (!(total > 0)) {
        expire(id, k, ts, "LOT_SIZE: quote_qty " + number_text(r.quote_qty) + " buys less than one step");
        return;
      }
      o.remaining = total;
      o.quote_pending = false;
    }
    double q = o.remaining;
    bool expire_rest = false;
    if (q > room) {
      expire_rest = room < q * (1 - kDust);  // a real shortfall, not binary noise
      q = room;
    }
    if (q > cap) {
      q = cap;
      expire_rest = false;
    }
    if (!(q > 0)) {  // the volume cap leaves nothing on this bar
      if (r.type == OrderType::stop_market || r.type == OrderType::take_profit_market) o.triggered = true;
      return;
    }
    const double px = price_at(slip_for(q));
    const double notional = q * px;
    const double fee = notional * (maker ? cfg.maker_fee : cfg.taker_fee);
    const double d = buy ? q : -q;
    if (spot && buy && d * px + fee > cash - (reserved - o.reserve) + kDust * notional) {
      expire(id, k, ts, kMsgBalance);  // the bar opened too far above the price the funds were held for
      return;
    }
    cash = cash - (d * px + fee);  // the backtester's cash update, bit for bit
    position_apply(k, d, px, r.leverage, at_close);

    OrderState& st = o.state;
    const double filled_before = st.filled_qty;
    st.filled_qty = filled_before + q;
    st.avg_price = filled_before == 0 ? px : (st.avg_price * filled_before + px * q) / st.filled_qty;
    st.fee += fee;
    st.updated = ts;
    const double before = o.remaining;
    o.remaining = before - q <= before * kDust ? 0.0 : before - q;
    const double keep = o.remaining == 0 ? 0.0 : o.reserve * (o.remaining / before);
    reserved -= o.reserve - keep;
    o.reserve = keep;
    const Fill fill{r.order_id, ++fill_seq, k.symbol, r.side, q, px, fee, maker, ts, o.remaining};
    if (o.remaining == 0) {
      end(o, k, OrderStatus::filled, "", ts);
      expire_rest = false;
    } else if (expire_rest) {
      end(o, k, OrderStatus::expired, "reduce-only: the position was smaller than the order; the rest expired", ts);
    } else {
      st.status = OrderStatus::partially_filled;
      if (r.type == OrderType::stop_market || r.type == OrderType::take_profit_market) o.triggered = true;
    }
    std::optional<OrderState> expired;
    if (expire_rest) expired = st;
    // State is complete: the listener may now submit or cancel (no reference above is used after this).
    if (listener) listener->on_fill(fill);
    if (expired && listener) listener->on_order_update(*expired);
  }

  // --- the bar ----------------------------------------------------------------------------------------------------

  void on_bar(const MarketBarClosed& b) {
    QTOS_ASSERT(!in_bar, "PaperExchange::on_bar called from inside a listener callback");
    // A bar without usable prices is a missing bar: the next one sees the gap.
    if (!(positive(b.open) && positive(b.high) && positive(b.low) && positive(b.close))) return;
    Book& k = book_get(b.symbol);
    const TimeNs interval = static_cast<TimeNs>(b.interval_s) * kNsPerSecond;
    if (k.listed && b.open_time != k.last_open + interval && interval > 0 &&
        cfg.gaps.resets(static_cast<std::int32_t>(std::min<TimeNs>((b.open_time - k.last_open) / interval - 1, 1 << 30)))) {
      k.spread_state.reset();  // as the backtester's indicators: restart after a gap the policy does not bridge
      k.spread = kNaN;
    }
    k.listed = true;
    ++k.bars;
    if (!k.working.empty() || k.pos.qty != 0) {
      struct InBar {  // cleared also when a listener throws through on_bar
        bool& flag;
        ~InBar() { flag = false; }
      } guard{in_bar};
      in_bar = true;
      match(k, b, kernels::fill_slippage<double>(costs, k.spread));
    } else {
      k.last_close = b.close;
    }
    k.last_open = b.open_time;
    k.spread = k.spread_state.update(b.high, b.low, 0.0);  // after the fills: they pay the previous bar's spread
  }

  void match(Book& k, const MarketBarClosed& b, double slip) {
    k.pos.from_close = false;
    // 1. Market orders (and the rest of triggered stops and targets) working before this bar, at the open.
    snapshot(k);
    for (std::uint64_t id : scratch) {
      const Order* o = working_order(id);
      if (!o || !(o->state.request.type == OrderType::market || o->triggered) || o->submitted_bar >= k.bars) continue;
      try_fill(id, k, b, b.open, slip, false, false);
    }
    // 2. Stop-market orders whose trigger the range reached, at the trigger or the open when the bar gapped through.
    snapshot(k);
    for (std::uint64_t id : scratch) {
      const Order* o = working_order(id);
      if (!o || o->state.request.type != OrderType::stop_market || o->triggered) continue;
      const double sp = o->state.request.stop_price;
      if (o->state.request.side == Side::sell) {
        if (b.low <= sp) try_fill(id, k, b, b.open < sp ? b.open : sp, slip, false, false);
      } else if (b.high >= sp) {
        try_fill(id, k, b, b.open > sp ? b.open : sp, slip, false, false);
      }
    }
    // 3. Take-profit-market orders, after the stops (a reduce-only target behind a filled stop has nothing left).
    snapshot(k);
    for (std::uint64_t id : scratch) {
      const Order* o = working_order(id);
      if (!o || o->state.request.type != OrderType::take_profit_market || o->triggered) continue;
      const double sp = o->state.request.stop_price;
      if (o->state.request.side == Side::sell) {
        if (b.high >= sp) try_fill(id, k, b, b.open > sp ? b.open : sp, slip, false, false);
      } else if (b.low <= sp) {
        try_fill(id, k, b, b.open < sp ? b.open : sp, slip, false, false);
      }
    }
    // 4. Limit orders the price crossed, at the limit or the open when the bar opened through it; IOC rests expire.
    snapshot(k);
    for (std::uint64_t id : scratch) {
      const Order* o = working_order(id);
      if (!o || o->state.request.type != OrderType::limit) continue;
      const double lp = o->state.request.price;
      const bool ioc = o->state.request.tif == TimeInForce::ioc;
      if (o->state.request.side == Side::buy) {
        if (b.low <= lp) try_fill(id, k, b, b.open < lp ? b.open : lp, 0.0, true, false);
      } else if (b.high >= lp) {
        try_fill(id, k, b, b.open > lp ? b.open : lp, 0.0, true, false);
      }
      if (ioc && working_order(id)) expire(id, k, b.open_time, "IOC: the unfilled rest expired");
    }
    // 5. Market-on-close orders at the close.
    snapshot(k);
    for (std::uint64_t id : scratch) {
      const Order* o = working_order(id);
      if (!o || o->state.request.type != OrderType::market_on_close) continue;
      try_fill(id, k, b, b.close, slip, false, true);
    }
    k.last_close = b.close;  // the mark
    if (!spot && k.pos.qty != 0) liquidation_check(k, b);
    if (!spot && k.pos.qty != 0 && cfg.funding_rate_8h != 0) {
      const TimeNs end_time = b.open_time + static_cast<TimeNs>(b.interval_s) * kNsPerSecond;
      for (TimeNs t = (floor_div(b.open_time, kFundingPeriod) + 1) * kFundingPeriod; t <= end_time; t += kFundingPeriod)
        cash = cash - k.pos.qty * b.close * cfg.funding_rate_8h;  // longs pay, shorts receive
    }
  }

  /// Closes an isolated position whose liquidation price the bar reached, at that price (a venue fill, order id 0).
  void liquidation_check(Book& k, const MarketBarClosed& b) {
    Position& p = k.pos;
    const double liq = liquidation_price(p);
    const bool hit = p.qty > 0 ? (p.from_close ? b.close : b.low) <= liq : (p.from_close ? b.close : b.high) >= liq;
    if (!hit) return;
    const double q = std::abs(p.qty), d = -p.qty;
    const double fee = q * liq * cfg.taker_fee;
    cash = cash - (d * liq + fee);
    p = Position{};
    position_index(k);
    const Fill fill{0, ++fill_seq, k.symbol, d > 0 ? Side::buy : Side::sell, q, liq, fee, false, b.open_time, 0.0};
    std::vector<OrderState> expired;
    snapshot(k);
    for (std::uint64_t id : scratch) {
      Order& o = orders.at(id);
      if (!o.state.request.reduce_only) continue;
      end(o, k, OrderStatus::expired, "liquidated: no position left to reduce", b.open_time);
      expired.push_back(o.state);
    }
    if (!listener) return;
    listener->on_fill(fill);
    for (const OrderState& s : expired) listener->on_order_update(s);
  }

  // --- submit and cancel ------------------------------------------------------------------------------------------

  SubmitResult place(const OrderRequest& r) {
    Book* k = book_find(r.symbol);
    if (!k || !k->listed) return reject(kCodeInvalidSymbol, "Invalid symbol.");
    if (r.order_id == 0) return reject(kCodeMandatory, mandatory("order_id"));
    const std::string cid = r.client_order_id.empty() ? order_client_id(r.order_id) : r.client_order_id;
    if (orders.count(r.order_id) || client_ids.count(cid))
      return reject(kCodeDuplicate, "ClientOrderId is duplicated.");
    if (static_cast<std::size_t>(r.side) >= EnumNames<Side>::kCount) return reject(kCodeMandatory, mandatory("side"));
    if (static_cast<std::size_t>(r.type) >= EnumNames<OrderType>::kCount)
      return reject(kCodeMandatory, mandatory("type"));
    if (static_cast<std::size_t>(r.tif) >= EnumNames<TimeInForce>::kCount)
      return reject(kCodeMandatory, mandatory("tif"));
    const bool limit = r.type == OrderType::limit;
    const bool triggered = r.type == OrderType::stop_market || r.type == OrderType::take_profit_market;
    if (r.qty != 0 && !positive(r.qty)) return reject(kCodeBadValue, invalid("qty", r.qty));
    if (r.quote_qty != 0 && !positive(r.quote_qty)) return reject(kCodeBadValue, invalid("quote_qty", r.quote_qty));
    if (r.price != 0 && !positive(r.price)) return reject(kCodeBadValue, invalid("price", r.price));
    if (r.stop_price != 0 && !positive(r.stop_price)) return reject(kCodeBadValue, invalid("stop_price", r.stop_price));
    if (r.qty == 0 && r.quote_qty == 0) return reject(kCodeMandatory, mandatory("qty' or 'quote_qty"));
    if (r.qty != 0 && r.quote_qty != 0)
      return reject(kCodeMandatory, "Parameters 'qty' and 'quote_qty' were both sent; send one of them.");
    if (r.quote_qty != 0 && r.type != OrderType::market)
      return reject(kCodeMandatory, "Parameter 'quote_qty' is for MARKET orders only.");
    if (limit && r.price == 0) return reject(kCodeMandatory, mandatory("price"));
    if (triggered && r.stop_price == 0) return reject(kCodeMandatory, mandatory("stop_price"));
    if (spot ? r.leverage != 1 : !(r.leverage >= 1 && r.leverage <= cfg.max_leverage))
      return reject(kCodeLeverage, "Leverage " + number_text(r.leverage) + " is not valid (allowed: 1" +
                                       (spot ? std::string(" on spot") : " to " + number_text(cfg.max_leverage)) +
                                       ").");

    // Filters, at the limit or trigger price, or the last close for orders that fill at a market price.
    const double ref = limit ? r.price : (triggered ? r.stop_price : k->last_close);
    SymbolFilters f = k->filters;
    if (!limit && !triggered) f.tick_size = 0;  // no price of ours to check
    if (r.reduce_only) f.min_notional = 0;      // an exit is never too small
    if (r.qty != 0) {
      if (auto v = filters_violation(f, r.qty, ref)) return reject(kCodeBadValue, "Filter failure: " + *v);
    } else if (f.min_notional > 0 && r.quote_qty < f.min_notional * (1 - kDust)) {
      return reject(kCodeBadValue,
                    "Filter failure: MIN_NOTIONAL: " + number_text(r.quote_qty) + " < " + number_text(f.min_notional));
    }

    // Funds: what the order may cost at the reference price is held until it fills or ends.
    const double rate = limit ? cfg.maker_fee : cfg.taker_fee;
    const bool buy = r.side == Side::buy;
    const double qty_ref = r.qty != 0 ? r.qty : r.quote_qty / ref;
    double reserve = 0;
    if (spot) {
      if (buy && !r.reduce_only) {
        const double notional = r.qty != 0 ? r.qty * ref : r.quote_qty;
        const double need = notional + notional * rate;
        if (available() < need) return reject(kCodeBalance, kMsgBalance);
        reserve = need;
      } else if (!buy && qty_ref > k->pos.qty * (1 + kDust)) {
        return reject(kCodeBalance, kMsgBalance);  // no shorts on spot
      }
    } else if (!r.reduce_only) {
      const double q = k->pos.qty;
      const bool adds = q == 0 || (q > 0) == buy;
      const double opening = adds ? qty_ref : std::max(0.0, qty_ref - std::abs(q));
      if (opening > 0) {
        const double notional = (r.quote_qty != 0 && adds) ? r.quote_qty : opening * ref;
        const double need = notional / r.leverage + notional * rate;
        if (available() < need) return reject(kCodeMargin, "Margin is insufficient.");
        reserve = need;
      }
    }

    Order o;
    o.state.request = r;
    o.state.request.client_order_id = cid;
    o.state.status = OrderStatus::accepted;
    o.state.updated = clock.now();
    o.book = k->index;
    o.submitted_bar = k->bars;
    o.remaining = r.qty;
    o.quote_pending = r.qty == 0;
    o.reserve = reserve;
    orders.emplace(r.order_id, std::move(o));
    client_ids.insert(cid);
    k->working.push_back(r.order_id);
    ++working_count;
    reserved += reserve;
    return SubmitResult{};
  }

  SubmitResult submit(const OrderRequest& r) {
    ++submits;
    SubmitResult result = place(r);
    if (cfg.lose_answer_every > 0 && submits % cfg.lose_answer_every == 0)
      return SubmitResult{SubmitOutcome::unknown, 0, "timeout: no answer"};  // the venue acted; the answer is lost
    return result;
  }

  SubmitResult amend_stop(std::uint64_t id, double stop) {
    Order* o = working_order(id);
    if (!o) return reject(kCodeUnknownOrder, "Unknown order sent.");
    const OrderType t = o->state.request.type;
    if (t != OrderType::stop_market && t != OrderType::take_profit_market)
      return reject(kCodeMandatory, "Only STOP_MARKET and TAKE_PROFIT_MARKET orders can be amended; order " + std::to_string(id) +
                                        " is " + std::string(enum_name(t)) + ".");
    if (o->triggered) return reject(kCodeUnknownOrder, "Order " + std::to_string(id) + " has already triggered.");
    if (!positive(stop)) return reject(kCodeBadValue, invalid("stop_price", stop));
    const double tick = books[o->book].filters.tick_size;
    if (tick > 0 && price_to_tick(stop, tick) != stop)
      return reject(kCodeBadValue, "Filter failure: PRICE_FILTER: stop price " + number_text(stop) + " is not a multiple of tick " +
                                       number_text(tick));
    o->state.request.stop_price = stop;
    o->state.updated = clock.now();
    return SubmitResult{};
  }

  SubmitResult cancel(std::uint64_t id) {
    Order* o = working_order(id);
    if (!o) return reject(kCodeUnknownOrder, "Unknown order sent.");
    end(*o, books[o->book], OrderStatus::canceled, "canceled by the client", clock.now());
    return SubmitResult{};
  }
};

PaperExchange::PaperExchange(PaperExchangeConfig config, Clock& clock) {
  config_validate(config);
  impl_ = std::make_unique<Impl>(std::move(config), clock);
}

PaperExchange::~PaperExchange() = default;

void PaperExchange::on_bar(const MarketBarClosed& bar) { impl_->on_bar(bar); }

double PaperExchange::last_price(const Symbol& symbol) const {
  const Impl::Book* k = impl_->book_find(symbol);
  return k && k->listed ? k->last_close : 0.0;
}

std::string PaperExchange::name() const { return "paper"; }

MarketKind PaperExchange::market() const { return impl_->cfg.market; }

std::string PaperExchange::quote_asset() const { return impl_->cfg.quote_asset; }

Result<SymbolFilters> PaperExchange::filters(const Symbol& symbol) const {
  const Impl::Book* k = impl_->book_find(symbol);
  if (!k || !k->listed)
    return Error{ErrorCode::not_found,
                 "symbol '" + symbol.str() + "' is not listed at the paper exchange (no bar yet)"};
  return k->filters;
}

SubmitResult PaperExchange::submit(const OrderRequest& order) { return impl_->submit(order); }

SubmitResult PaperExchange::cancel(std::uint64_t order_id) { return impl_->cancel(order_id); }

SubmitResult PaperExchange::amend_stop(std::uint64_t order_id, double stop_price) { return impl_->amend_stop(order_id, stop_price); }

std::optional<OrderState> PaperExchange::query(std::uint64_t order_id) const {
  const auto it = impl_->orders.find(order_id);
  if (it == impl_->orders.end()) return std::nullopt;
  return it->second.state;
}

std::vector<OrderState> PaperExchange::open_orders() const {
  std::vector<OrderState> out;
  for (const Impl::Book& k : impl_->books)
    for (std::uint64_t id : k.working) out.push_back(impl_->orders.at(id).state);
  std::sort(out.begin(), out.end(),
            [](const OrderState& a, const OrderState& b) { return a.request.order_id < b.request.order_id; });
  return out;
}

std::vector<VenuePosition> PaperExchange::positions() const {
  const Impl& m = *impl_;
  std::vector<VenuePosition> out;
  for (std::uint32_t i : m.open) {
    const Impl::Book& k = m.books[i];
    const Impl::Position& p = k.pos;
    VenuePosition v;
    v.symbol = k.symbol;
    v.qty = p.qty;
    v.entry_price = p.entry;
    v.leverage = p.leverage;
    v.margin = m.position_margin(p);
    v.liquidation_price = m.spot ? 0.0 : m.liquidation_price(p);
    v.mark_price = k.last_close;
    v.unrealized_pnl = (k.last_close - p.entry) * p.qty;
    out.push_back(v);
  }
  std::sort(out.begin(), out.end(),
            [](const VenuePosition& a, const VenuePosition& b) { return a.symbol.view() < b.symbol.view(); });
  return out;
}

double PaperExchange::quote_free() const { return impl_->available(); }

std::vector<Balance> PaperExchange::balances() const {
  const Impl& m = *impl_;
  std::map<std::string, Balance> by_asset;
  Balance& quote = by_asset[m.cfg.quote_asset];
  quote.asset = m.cfg.quote_asset;
  if (m.spot) {
    quote.free = m.cash - m.reserved;
    quote.locked = m.reserved;
    const std::string_view qa = m.cfg.quote_asset;
    for (std::uint32_t i : m.open) {
      const Impl::Book& k = m.books[i];
      const std::string_view s = k.symbol.view();
      const bool suffix = s.size() > qa.size() && s.substr(s.size() - qa.size()) == qa;
      const std::string asset(suffix ? s.substr(0, s.size() - qa.size()) : s);
      double selling = 0;  // held by working sells
      for (std::uint64_t id : k.working) {
        const Impl::Order& o = m.orders.at(id);
        if (o.state.request.side == Side::sell) selling += o.quote_pending ? 0.0 : o.remaining;
      }
      Balance& b = by_asset[asset];
      b.asset = asset;
      b.locked += std::min(selling, k.pos.qty);
      b.free += k.pos.qty - std::min(selling, k.pos.qty);
    }
  } else {
    const double used = m.used_margin();
    quote.free = m.wallet() - used - m.reserved;
    quote.locked = used + m.reserved;
  }
  std::vector<Balance> out;
  for (auto& [asset, b] : by_asset) out.push_back(std::move(b));
  return out;
}

double PaperExchange::equity() const { return impl_->equity(); }

void PaperExchange::listener_set(ExchangeListener* listener) { impl_->listener = listener; }


// ---------------------------------------------------------------------------------------------------------------
// Checkpoints

boost::json::object PaperExchange::checkpoint() const {
  const Impl& m = *impl_;
  boost::json::array books;
  for (const Impl::Book& k : m.books) {
    boost::json::array working;
    for (std::uint64_t id : k.working) {
      const Impl::Order& o = m.orders.at(id);
      working.push_back(boost::json::object{{"state", order_state_ckpt(o.state)},
                                            {"submitted_bar", o.submitted_bar},
                                            {"remaining", ckpt::num(o.remaining)},
                                            {"quote_pending", o.quote_pending},
                                            {"triggered", o.triggered},
                                            {"reserve", ckpt::num(o.reserve)}});
    }
    books.push_back(boost::json::object{{"symbol", k.symbol.str()},
                                        {"listed", k.listed},
                                        {"bars", k.bars},
                                        {"last_open", k.last_open},
                                        {"last_close", ckpt::num(k.last_close)},
                                        {"spread", ckpt::num(k.spread)},
                                        {"spread_state", ckpt::pod(k.spread_state)},
                                        {"pos", ckpt::pod(k.pos)},
                                        {"working", std::move(working)}});
  }
  return {{"books", std::move(books)},
          {"cash", ckpt::num(m.cash)},
          {"reserved", ckpt::num(m.reserved)},
          {"fill_seq", m.fill_seq},
          {"submits", m.submits}};
}

void PaperExchange::restore(const boost::json::object& state) {
  Impl& m = *impl_;
  if (!m.books.empty() || !m.orders.empty() || m.submits != 0)
    throw std::logic_error("PaperExchange::restore: the venue has already seen bars or orders");
  for (const boost::json::value& bv : ckpt::arr(state, "books")) {
    if (!bv.is_object()) throw std::runtime_error("checkpoint: a book is not an object");
    const boost::json::object& b = bv.get_object();
    Impl::Book& k = m.book_get(Symbol(ckpt::str(b, "symbol")));
    k.listed = ckpt::flag(b, "listed");
    k.bars = ckpt::u64(b, "bars");
    k.last_open = ckpt::i64(b, "last_open");
    k.last_close = ckpt::dbl(b, "last_close");
    k.spread = ckpt::dbl(b, "spread");
    k.spread_state = ckpt::pod_get<decltype(k.spread_state)>(ckpt::at(b, "spread_state"), "spread_state");
    k.pos = ckpt::pod_get<Impl::Position>(ckpt::at(b, "pos"), "pos");
    m.position_index(k);
    for (const boost::json::value& ov : ckpt::arr(b, "working")) {
      if (!ov.is_object()) throw std::runtime_error("checkpoint: a working order is not an object");
      const boost::json::object& oj = ov.get_object();
      Impl::Order o;
      o.state = order_state_restore(ckpt::obj(oj, "state"));
      o.book = k.index;
      o.submitted_bar = ckpt::u64(oj, "submitted_bar");
      o.remaining = ckpt::dbl(oj, "remaining");
      o.quote_pending = ckpt::flag(oj, "quote_pending");
      o.triggered = ckpt::flag(oj, "triggered");
      o.reserve = ckpt::dbl(oj, "reserve");
      const std::uint64_t id = o.state.request.order_id;
      if (o.state.request.symbol != k.symbol || !m.orders.emplace(id, o).second)
        throw std::runtime_error("checkpoint: working order " + std::to_string(id) + " is duplicated or in another symbol's book");
      m.client_ids.insert(o.state.request.client_order_id);
      k.working.push_back(id);
      ++m.working_count;
    }
  }
  m.cash = ckpt::dbl(state, "cash");
  m.reserved = ckpt::dbl(state, "reserved");
  m.fill_seq = ckpt::u64(state, "fill_seq");
  m.submits = ckpt::u64(state, "submits");
}

}  // namespace qtos
