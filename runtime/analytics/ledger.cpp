#include "runtime/analytics/ledger.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "cpu/util/enum_names.hpp"

namespace qtos {
namespace {

/// The ledger's schema versions (PRAGMA user_version): 1 = orders, fills, trades, positions, equity, meta.
/// Enums are stored by name, doubles as REAL (exact; a NaN is stored as NULL and read back as NaN), times as
/// Unix ns. No legacy file exists (every ledger was stamped with kAppIdLedger from its first version), so no table
/// identifies an unstamped file as a ledger: a SQLite file without our id that has tables is refused as foreign.
const store::Schema& ledger_schema() {
  static const store::Schema schema{"trading ledger",
                                    store::kAppIdLedger,
                                    {},
                                    {{1, [](store::Db& db) {
                                        db.exec(R"sql(
CREATE TABLE IF NOT EXISTS orders (
  order_id INTEGER PRIMARY KEY,
  client_order_id TEXT NOT NULL,
  strategy TEXT NOT NULL,
  symbol TEXT NOT NULL,
  side TEXT NOT NULL,
  type TEXT NOT NULL,
  qty REAL,
  quote_qty REAL,
  price REAL,
  stop_price REAL,
  reduce_only INTEGER NOT NULL,
  leverage REAL,
  tif TEXT NOT NULL,
  purpose TEXT NOT NULL,
  position_id INTEGER NOT NULL,
  status TEXT NOT NULL,
  filled_qty REAL,
  avg_price REAL,
  fee REAL,
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  deny_reason TEXT,
  venue_code INTEGER NOT NULL,
  detail TEXT NOT NULL,
  policy_version INTEGER NOT NULL,
  confidence REAL,
  trace TEXT NOT NULL,
  repeats INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS fills (
  seq INTEGER PRIMARY KEY,
  fill_id INTEGER NOT NULL UNIQUE,
  order_id INTEGER NOT NULL,
  strategy TEXT NOT NULL,
  symbol TEXT NOT NULL,
  side TEXT NOT NULL,
  qty REAL,
  price REAL,
  fee REAL,
  maker INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  remaining_qty REAL
) STRICT;
CREATE INDEX IF NOT EXISTS fills_by_order ON fills (order_id);
CREATE TABLE IF NOT EXISTS trades (
  seq INTEGER PRIMARY KEY,
  position_id INTEGER NOT NULL,
  strategy TEXT NOT NULL,
  symbol TEXT NOT NULL,
  side TEXT NOT NULL,
  qty REAL,
  entry_price REAL,
  exit_price REAL,
  fees REAL,
  pnl REAL,
  ret REAL,
  entry_time INTEGER NOT NULL,
  exit_time INTEGER NOT NULL,
  reason TEXT NOT NULL,
  classification TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS positions (
  position_id INTEGER PRIMARY KEY,
  strategy TEXT NOT NULL,
  symbol TEXT NOT NULL,
  side TEXT NOT NULL,
  qty REAL,
  entry_price REAL,
  entry_fee REAL,
  entry_time INTEGER NOT NULL,
  stop_price REAL,
  take_price REAL,
  leverage REAL,
  bars_held INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS equity (
  seq INTEGER PRIMARY KEY,
  ts INTEGER NOT NULL,
  equity REAL,
  cash REAL,
  exposure REAL,
  open_positions INTEGER NOT NULL,
  risk_mode TEXT NOT NULL,
  regime TEXT NOT NULL,
  trading_state TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;
)sql");
                                      }}}};
  return schema;
}

// The statements, spelled once: cached() finds them by their text.
constexpr std::string_view kOrderPut =
    "INSERT OR REPLACE INTO orders (order_id, client_order_id, strategy, symbol, side, type, qty, quote_qty, price, "
    "stop_price, reduce_only, leverage, tif, purpose, position_id, status, filled_qty, avg_price, fee, created, updated, "
    "deny_reason, venue_code, detail, policy_version, confidence, trace, repeats) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, "
    "?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";
constexpr std::string_view kOrderGet =
    "SELECT order_id, client_order_id, strategy, symbol, side, type, qty, quote_qty, price, stop_price, reduce_only, "
    "leverage, tif, purpose, position_id, status, filled_qty, avg_price, fee, created, updated, deny_reason, venue_code, "
    "detail, policy_version, confidence, trace, repeats FROM orders WHERE order_id = ?1";
constexpr std::string_view kOrdersQuery =
    "SELECT order_id, client_order_id, strategy, symbol, side, type, qty, quote_qty, price, stop_price, reduce_only, "
    "leverage, tif, purpose, position_id, status, filled_qty, avg_price, fee, created, updated, deny_reason, venue_code, "
    "detail, policy_version, confidence, trace, repeats FROM orders WHERE (?1 IS NULL OR status = ?1) AND (?2 = '' OR symbol = ?2) "
    "AND (?3 = '' OR strategy = ?3) ORDER BY order_id DESC LIMIT ?4";
constexpr std::string_view kFillAdd =
    "INSERT OR IGNORE INTO fills (fill_id, order_id, strategy, symbol, side, qty, price, fee, maker, ts, remaining_qty) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
constexpr std::string_view kFillsAll =
    "SELECT fill_id, order_id, strategy, symbol, side, qty, price, fee, maker, ts, remaining_qty FROM fills ORDER BY seq";
constexpr std::string_view kFillsOfOrder =
    "SELECT fill_id, order_id, strategy, symbol, side, qty, price, fee, maker, ts, remaining_qty FROM fills "
    "WHERE order_id = ?1 ORDER BY seq";
constexpr std::string_view kTradeAdd =
    "INSERT INTO trades (position_id, strategy, symbol, side, qty, entry_price, exit_price, fees, pnl, ret, entry_time, "
    "exit_time, reason, classification) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";
constexpr std::string_view kTrades =
    "SELECT position_id, strategy, symbol, side, qty, entry_price, exit_price, fees, pnl, ret, entry_time, exit_time, "
    "reason, classification FROM trades ORDER BY exit_time, seq";
constexpr std::string_view kPositionPut =
    "INSERT OR REPLACE INTO positions (position_id, strategy, symbol, side, qty, entry_price, entry_fee, entry_time, "
    "stop_price, take_price, leverage, bars_held) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";
constexpr std::string_view kPositionRemove = "DELETE FROM positions WHERE position_id = ?1";
constexpr std::string_view kPositions =
    "SELECT position_id, strategy, symbol, side, qty, entry_price, entry_fee, entry_time, stop_price, take_price, leverage, "
    "bars_held FROM positions ORDER BY position_id";
constexpr std::string_view kEquityAdd =
    "INSERT INTO equity (ts, equity, cash, exposure, open_positions, risk_mode, regime, trading_state) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
constexpr std::string_view kEquity =
    "SELECT ts, equity, cash, exposure, open_positions, risk_mode, regime, trading_state FROM equity ORDER BY ts, seq";
constexpr std::string_view kMetaPut = "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)";
constexpr std::string_view kMetaGet = "SELECT value FROM meta WHERE key = ?1";
constexpr std::string_view kOrderIdMax = "SELECT COALESCE(MAX(order_id), 0) FROM orders";
constexpr std::string_view kPositionIdMax =
    "SELECT MAX((SELECT COALESCE(MAX(position_id), 0) FROM positions), (SELECT COALESCE(MAX(position_id), 0) FROM trades), "
    "(SELECT COALESCE(MAX(position_id), 0) FROM orders))";

/// A REAL column: NULL (how SQLite stores a NaN) reads back as NaN.
double real_or_nan(const store::Stmt& s, int i) {
  return s.null_at(i) ? std::numeric_limits<double>::quiet_NaN() : s.real_at(i);
}

/// Reads a stored enum name; a name this build does not know means a damaged or foreign row.
template <class E>
E enum_at(const store::Stmt& s, int i, const std::string& path, std::string_view table, std::string_view column) {
  const std::string text = s.text_at(i);
  if (const auto e = enum_parse<E>(text)) return *e;
  throw store::StoreError("trading ledger '" + path + "': " + std::string(table) + "." + std::string(column) + " holds '" +
                              text + "'; expected " + enum_names_joined<E>(),
                          0);
}

/// A stored FixedString column; a value too long for it means a damaged or foreign row.
template <class F>
F fixed_at(const store::Stmt& s, int i, const std::string& path, std::string_view table, std::string_view column) {
  const std::string text = s.text_at(i);
  if (text.size() > F::kCapacity)
    throw store::StoreError("trading ledger '" + path + "': " + std::string(table) + "." + std::string(column) + " holds '" +
                                text + "', longer than " + std::to_string(F::kCapacity) + " characters",
                            0);
  return F(text);
}

std::uint64_t id_at(const store::Stmt& s, int i) { return static_cast<std::uint64_t>(s.int_at(i)); }

}  // namespace

struct Ledger::Impl {
  Impl(const std::string& p, store::OpenMode mode) : db(p, ledger_schema(), store::OpenOptions{.mode = mode}), path(p) {}

  /// Begins the cycle's transaction at its first write.
  void write_begin() {
    if (!tx) tx.emplace(db);
  }

  OrderRecord order_read(const store::Stmt& s) const {
    OrderRecord o;
    auto& r = o.request;
    r.order_id = id_at(s, 0);
    r.client_order_id = s.text_at(1);
    r.strategy = fixed_at<StrategyId>(s, 2, path, "orders", "strategy");
    r.symbol = fixed_at<Symbol>(s, 3, path, "orders", "symbol");
    r.side = enum_at<Side>(s, 4, path, "orders", "side");
    r.type = enum_at<OrderType>(s, 5, path, "orders", "type");
    r.qty = real_or_nan(s, 6);
    r.quote_qty = real_or_nan(s, 7);
    r.price = real_or_nan(s, 8);
    r.stop_price = real_or_nan(s, 9);
    r.reduce_only = s.int_at(10) != 0;
    r.leverage = real_or_nan(s, 11);
    r.tif = enum_at<TimeInForce>(s, 12, path, "orders", "tif");
    o.purpose = enum_at<OrderPurpose>(s, 13, path, "orders", "purpose");
    o.position_id = id_at(s, 14);
    o.status = enum_at<OrderStatus>(s, 15, path, "orders", "status");
    o.filled_qty = real_or_nan(s, 16);
    o.avg_price = real_or_nan(s, 17);
    o.fee = real_or_nan(s, 18);
    o.created = s.int_at(19);
    o.updated = s.int_at(20);
    if (!s.null_at(21)) o.deny_reason = enum_at<DenyReason>(s, 21, path, "orders", "deny_reason");
    o.venue_code = static_cast<std::int32_t>(s.int_at(22));
    o.detail = s.text_at(23);
    o.policy_version = id_at(s, 24);
    o.confidence = real_or_nan(s, 25);
    o.repeats = static_cast<std::uint32_t>(s.int_at(27));
    try {
      o.trace = decision_trace_parse(s.text_at(26));
    } catch (const std::invalid_argument& e) {
      throw store::StoreError("trading ledger '" + path + "': order " + std::to_string(r.order_id) + ": " + e.what(), 0);
    }
    return o;
  }

  FillRecord fill_read(const store::Stmt& s) const {
    FillRecord f;
    f.fill.fill_id = id_at(s, 0);
    f.fill.order_id = id_at(s, 1);
    f.strategy = fixed_at<StrategyId>(s, 2, path, "fills", "strategy");
    f.fill.symbol = fixed_at<Symbol>(s, 3, path, "fills", "symbol");
    f.fill.side = enum_at<Side>(s, 4, path, "fills", "side");
    f.fill.qty = real_or_nan(s, 5);
    f.fill.price = real_or_nan(s, 6);
    f.fill.fee = real_or_nan(s, 7);
    f.fill.maker = s.int_at(8) != 0;
    f.fill.ts = s.int_at(9);
    f.fill.remaining_qty = real_or_nan(s, 10);
    return f;
  }

  store::Db db;
  std::string path;
  std::optional<store::Transaction> tx;  ///< the cycle's open transaction (none between commits)
};

Ledger::Ledger(const std::string& path, store::OpenMode mode) : impl_(std::make_unique<Impl>(path, mode)) {}

// Uncommitted writes are rolled back (store::Transaction's destructor): only whole cycles are ever stored.
Ledger::~Ledger() = default;

void Ledger::order_put(const OrderRecord& order) {
  impl_->write_begin();
  const auto& r = order.request;
  auto s = impl_->db.cached(kOrderPut);
  s.bind(1, r.order_id)
      .bind(2, r.client_order_id)
      .bind(3, r.strategy.view())
      .bind(4, r.symbol.view())
      .bind(5, enum_name(r.side))
      .bind(6, enum_name(r.type))
      .bind(7, r.qty)
      .bind(8, r.quote_qty)
      .bind(9, r.price)
      .bind(10, r.stop_price)
      .bind(11, std::int64_t{r.reduce_only ? 1 : 0})
      .bind(12, r.leverage)
      .bind(13, enum_name(r.tif))
      .bind(14, enum_name(order.purpose))
      .bind(15, order.position_id)
      .bind(16, enum_name(order.status))
      .bind(17, order.filled_qty)
      .bind(18, order.avg_price)
      .bind(19, order.fee)
      .bind(20, std::int64_t{order.created})
      .bind(21, std::int64_t{order.updated});
  if (order.deny_reason) s.bind(22, enum_name(*order.deny_reason));
  else s.bind_null(22);
  s.bind(23, order.venue_code)
      .bind(24, order.detail)
      .bind(25, order.policy_version)
      .bind(26, order.confidence)
      .bind(27, decision_trace_json(order.trace))
      .bind(28, std::int64_t{order.repeats})
      .run();
}

void Ledger::fill_add(const FillRecord& fill) {
  impl_->write_begin();
  const auto& f = fill.fill;
  impl_->db.cached(kFillAdd)
      .bind(1, f.fill_id)
      .bind(2, f.order_id)
      .bind(3, fill.strategy.view())
      .bind(4, f.symbol.view())
      .bind(5, enum_name(f.side))
      .bind(6, f.qty)
      .bind(7, f.price)
      .bind(8, f.fee)
      .bind(9, std::int64_t{f.maker ? 1 : 0})
      .bind(10, std::int64_t{f.ts})
      .bind(11, f.remaining_qty)
      .run();
}

void Ledger::trade_add(const ClosedTrade& t) {
  impl_->write_begin();
  impl_->db.cached(kTradeAdd)
      .bind(1, t.position_id)
      .bind(2, t.strategy.view())
      .bind(3, t.symbol.view())
      .bind(4, enum_name(t.side))
      .bind(5, t.qty)
      .bind(6, t.entry_price)
      .bind(7, t.exit_price)
      .bind(8, t.fees)
      .bind(9, t.pnl)
      .bind(10, t.ret)
      .bind(11, std::int64_t{t.entry_time})
      .bind(12, std::int64_t{t.exit_time})
      .bind(13, enum_name(t.reason))
      .bind(14, t.classification)
      .run();
  impl_->db.cached(kPositionRemove).bind(1, t.position_id).run();
}

void Ledger::position_put(const PositionRecord& p) {
  impl_->write_begin();
  impl_->db.cached(kPositionPut)
      .bind(1, p.position_id)
      .bind(2, p.strategy.view())
      .bind(3, p.symbol.view())
      .bind(4, enum_name(p.side))
      .bind(5, p.qty)
      .bind(6, p.entry_price)
      .bind(7, p.entry_fee)
      .bind(8, std::int64_t{p.entry_time})
      .bind(9, p.stop_price)
      .bind(10, p.take_price)
      .bind(11, p.leverage)
      .bind(12, p.bars_held)
      .run();
}

void Ledger::position_remove(std::uint64_t position_id) {
  impl_->write_begin();
  impl_->db.cached(kPositionRemove).bind(1, position_id).run();
}

void Ledger::equity_add(const EquityPoint& p) {
  impl_->write_begin();
  impl_->db.cached(kEquityAdd)
      .bind(1, std::int64_t{p.ts})
      .bind(2, p.equity)
      .bind(3, p.cash)
      .bind(4, p.exposure)
      .bind(5, p.open_positions)
      .bind(6, enum_name(p.risk_mode))
      .bind(7, enum_name(p.regime))
      .bind(8, p.trading_state)
      .run();
}

void Ledger::meta_put(const std::string& key, const std::string& value) {
  impl_->write_begin();
  impl_->db.cached(kMetaPut).bind(1, key).bind(2, value).run();
}

void Ledger::commit() {
  if (!impl_->tx) return;
  // Whatever happens, the transaction object is done: a failed COMMIT was rolled back by its destructor.
  struct Reset {
    std::optional<store::Transaction>& tx;
    ~Reset() { tx.reset(); }
  } reset{impl_->tx};
  impl_->tx->commit();
}

std::optional<OrderRecord> Ledger::order_get(std::uint64_t order_id) const {
  auto s = impl_->db.cached(kOrderGet);
  s.bind(1, order_id);
  if (!s.step()) return std::nullopt;
  return impl_->order_read(s);
}

std::vector<OrderRecord> Ledger::orders(const OrderQuery& q) const {
  auto s = impl_->db.cached(kOrdersQuery);
  if (q.status) s.bind(1, enum_name(*q.status));
  else s.bind_null(1);
  s.bind(2, q.symbol).bind(3, q.strategy).bind(4, std::int64_t{q.limit < 0 ? -1 : q.limit});
  std::vector<OrderRecord> out;
  while (s.step()) out.push_back(impl_->order_read(s));
  return out;
}

std::vector<FillRecord> Ledger::fills(std::uint64_t order_id) const {
  auto s = impl_->db.cached(order_id == 0 ? kFillsAll : kFillsOfOrder);
  if (order_id != 0) s.bind(1, order_id);
  std::vector<FillRecord> out;
  while (s.step()) out.push_back(impl_->fill_read(s));
  return out;
}

std::vector<ClosedTrade> Ledger::trades() const {
  auto s = impl_->db.cached(kTrades);
  const std::string& path = impl_->path;
  std::vector<ClosedTrade> out;
  while (s.step()) {
    ClosedTrade t;
    t.position_id = id_at(s, 0);
    t.strategy = fixed_at<StrategyId>(s, 1, path, "trades", "strategy");
    t.symbol = fixed_at<Symbol>(s, 2, path, "trades", "symbol");
    t.side = enum_at<Side>(s, 3, path, "trades", "side");
    t.qty = real_or_nan(s, 4);
    t.entry_price = real_or_nan(s, 5);
    t.exit_price = real_or_nan(s, 6);
    t.fees = real_or_nan(s, 7);
    t.pnl = real_or_nan(s, 8);
    t.ret = real_or_nan(s, 9);
    t.entry_time = s.int_at(10);
    t.exit_time = s.int_at(11);
    t.reason = enum_at<CloseReason>(s, 12, path, "trades", "reason");
    t.classification = s.text_at(13);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<PositionRecord> Ledger::positions() const {
  auto s = impl_->db.cached(kPositions);
  const std::string& path = impl_->path;
  std::vector<PositionRecord> out;
  while (s.step()) {
    PositionRecord p;
    p.position_id = id_at(s, 0);
    p.strategy = fixed_at<StrategyId>(s, 1, path, "positions", "strategy");
    p.symbol = fixed_at<Symbol>(s, 2, path, "positions", "symbol");
    p.side = enum_at<Side>(s, 3, path, "positions", "side");
    p.qty = real_or_nan(s, 4);
    p.entry_price = real_or_nan(s, 5);
    p.entry_fee = real_or_nan(s, 6);
    p.entry_time = s.int_at(7);
    p.stop_price = real_or_nan(s, 8);
    p.take_price = real_or_nan(s, 9);
    p.leverage = real_or_nan(s, 10);
    p.bars_held = static_cast<std::int32_t>(s.int_at(11));
    out.push_back(p);
  }
  return out;
}

std::vector<EquityPoint> Ledger::equity_curve() const {
  auto s = impl_->db.cached(kEquity);
  const std::string& path = impl_->path;
  std::vector<EquityPoint> out;
  while (s.step()) {
    EquityPoint p;
    p.ts = s.int_at(0);
    p.equity = real_or_nan(s, 1);
    p.cash = real_or_nan(s, 2);
    p.exposure = real_or_nan(s, 3);
    p.open_positions = static_cast<std::int32_t>(s.int_at(4));
    p.risk_mode = enum_at<RiskMode>(s, 5, path, "equity", "risk_mode");
    p.regime = enum_at<Regime>(s, 6, path, "equity", "regime");
    p.trading_state = s.text_at(7);
    out.push_back(std::move(p));
  }
  return out;
}

std::optional<std::string> Ledger::meta_get(const std::string& key) const {
  auto s = impl_->db.cached(kMetaGet);
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.text_at(0);
}

std::uint64_t Ledger::order_id_max() const { return static_cast<std::uint64_t>(impl_->db.query_int(kOrderIdMax)); }

std::uint64_t Ledger::position_id_max() const { return static_cast<std::uint64_t>(impl_->db.query_int(kPositionIdMax)); }

const std::string& Ledger::path() const { return impl_->path; }

}  // namespace qtos
