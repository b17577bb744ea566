#include "api/binance/kline_feed.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include <boost/json.hpp>

#include "api/binance/signing.hpp"
#include "runtime/data/interval.hpp"

namespace qtos::binance {

namespace json = boost::json;

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

double dnum(const json::value& v) {
  if (v.is_string()) return std::strtod(std::string(v.as_string()).c_str(), nullptr);
  return v.is_number() ? v.to_number<double>() : 0.0;
}
std::int64_t inum(const json::value& v) {
  if (v.is_string()) return std::strtoll(std::string(v.as_string()).c_str(), nullptr, 10);
  return v.is_int64() ? v.as_int64() : v.is_uint64() ? static_cast<std::int64_t>(v.as_uint64()) : v.is_double() ? static_cast<std::int64_t>(v.as_double()) : 0;
}

}  // namespace

std::string kline_stream_target(const std::vector<std::string>& symbols, const std::string& interval, bool book_tickers) {
  std::string t = "/stream?streams=";
  bool first = true;
  for (const std::string& s : symbols) {
    const std::string name = lower(s);
    if (!first) t += '/';
    first = false;
    t.append(name).append("@kline_").append(interval);
    if (book_tickers) t.append("/").append(name).append("@bookTicker");
  }
  return t;
}

struct KlineFeed::Impl {
  KlineFeed& owner;
  const KlineFeedOptions& o;
  std::map<std::string, std::int64_t> last_open;  // per symbol: the newest bar delivered
  std::int64_t interval_ms = 0;
  std::unique_ptr<HttpsClient> rest;
  std::unique_ptr<WsSession> session;

  Impl(KlineFeed& f, const KlineFeedOptions& opts) : owner(f), o(opts) {}

  void note(const std::string& s) const {
    if (o.on_note) o.on_note(s);
  }

  // Hands a bar on once, in order: a bar at or before the symbol's last one is a repeat or a late copy.
  void give(const MarketBarClosed& b, bool from_rest) {
    const std::string sym = b.symbol.str();
    const std::int64_t open_ms = b.open_time / kNsPerMillisecond;
    const auto it = last_open.find(sym);
    if (it != last_open.end() && open_ms <= it->second) return;
    last_open[sym] = open_ms;
    if (from_rest) ++owner.backfilled_;
    o.on_bar(b);
  }

  // Reads the symbol's closed bars after its last delivered one, up to (not including) `until_open_ms`, over REST.
  void backfill(const std::string& sym, std::int64_t until_open_ms) {
    if (last_open.find(sym) == last_open.end()) return;  // nothing delivered yet: the stream starts the series
    for (int page = 0; page < 100; ++page) {
      const std::int64_t from = last_open[sym] + interval_ms;
      if (from >= until_open_ms) return;
      const std::string target = std::string(o.market == MarketKind::spot ? "/api/v3/klines" : "/fapi/v1/klines") + "?" +
                                 query_encode({{"symbol", sym}, {"interval", o.interval}, {"startTime", std::to_string(from)},
                                               {"limit", "1000"}});
      const HttpReply r = rest->request("GET", target, {}, o.rest_timeout);
      if (r.transport != Transport::ok || r.status != 200) {
        note("back-fill of " + sym + " failed (" + (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error) + "): bars may be missing");
        return;
      }
      json::error_code ec;
      const json::value v = json::parse(r.body, ec);
      if (ec || !v.is_array() || v.as_array().empty()) return;
      std::size_t given = 0;
      for (const json::value& row : v.as_array()) {
        if (!row.is_array() || row.as_array().size() < 9) continue;
        const json::array& k = row.as_array();
        const std::int64_t open = inum(k[0]), close_ms = inum(k[6]);
        if (open >= until_open_ms || close_ms >= o.now_ms()) break;  // the stream's bar, or one still open
        MarketBarClosed b;
        b.symbol = sym;
        b.interval_s = static_cast<std::int32_t>(interval_ms / 1000);
        b.open_time = open * kNsPerMillisecond;
        b.open = dnum(k[1]), b.high = dnum(k[2]), b.low = dnum(k[3]), b.close = dnum(k[4]), b.volume = dnum(k[5]);
        b.quote_volume = dnum(k[7]);
        b.trades = inum(k[8]);
        give(b, true);
        ++given;
      }
      if (given == 0) return;
    }
  }

  // A bar from the stream; one after a hole brings the hole's bars from REST first.
  void deliver(const MarketBarClosed& b) {
    const std::string sym = b.symbol.str();
    const std::int64_t open_ms = b.open_time / kNsPerMillisecond;
    const auto it = last_open.find(sym);
    if (it != last_open.end() && open_ms > it->second + interval_ms) backfill(sym, open_ms);
    give(b, false);
  }

  void on_text(const std::string& text) {
    json::error_code ec;
    const json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) return;
    const json::value* data = v.as_object().if_contains("data");
    const json::object& d = data != nullptr && data->is_object() ? data->as_object() : v.as_object();
    if (const json::value* kv = d.if_contains("k"); kv != nullptr && kv->is_object()) {
      const json::object& k = kv->as_object();
      const json::value* closed = k.if_contains("x");
      if (closed == nullptr || !closed->is_bool() || !closed->as_bool()) return;  // still open
      MarketBarClosed b;
      b.symbol = std::string(k.at("s").as_string());
      b.interval_s = static_cast<std::int32_t>(interval_ms / 1000);
      b.open_time = inum(k.at("t")) * kNsPerMillisecond;
      b.open = dnum(k.at("o")), b.high = dnum(k.at("h")), b.low = dnum(k.at("l")), b.close = dnum(k.at("c"));
      b.volume = dnum(k.at("v"));
      if (const auto* q = k.if_contains("q")) b.quote_volume = dnum(*q);
      if (const auto* n = k.if_contains("n")) b.trades = inum(*n);
      deliver(b);
      return;
    }
    if (o.on_book && d.contains("s") && d.contains("b") && d.contains("a")) {
      BookTicker t;
      t.symbol = std::string(d.at("s").as_string());
      t.bid = dnum(d.at("b"));
      t.ask = dnum(d.at("a"));
      o.on_book(t);
    }
  }
};

KlineFeed::KlineFeed(KlineFeedOptions options) : options_(std::move(options)), impl_(std::make_unique<Impl>(*this, options_)) {
  if (options_.symbols.empty()) throw std::invalid_argument("kline feed: no symbols (expected at least one, e.g. BTCUSDT)");
  impl_->interval_ms = interval_parse_ms(options_.interval, "kline feed interval");
  if (!options_.on_bar) throw std::invalid_argument("kline feed: no on_bar callback");
  if (!options_.now_ms)
    options_.now_ms = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    };
  Impl& im = *impl_;
  WsSessionOptions w;
  w.name = "kline stream";
  w.endpoint = options_.ws;
  w.reconnect = options_.reconnect;
  w.target = [this] { return kline_stream_target(options_.symbols, options_.interval, options_.book_tickers); };
  // What closed while we were away comes from REST before the stream resumes.
  w.on_open = [this, &im](std::uint64_t) {
    const std::int64_t now_open = (options_.now_ms() / im.interval_ms) * im.interval_ms;
    for (const std::string& s : options_.symbols) im.backfill(s, now_open);
  };
  w.on_text = [&im](const std::string& text) { im.on_text(text); };
  w.on_note = options_.on_note;
  im.session = std::make_unique<WsSession>(std::move(w));  // checks the back-off and the CA file
  im.rest = std::make_unique<HttpsClient>(options_.rest);
}

KlineFeed::~KlineFeed() { stop(); }

void KlineFeed::start(std::map<std::string, std::int64_t> last_open_ms) {
  if (started_) return;
  started_ = true;
  impl_->last_open = std::move(last_open_ms);
  impl_->session->start();
}

void KlineFeed::stop() { impl_->session->stop(); }

std::uint64_t KlineFeed::connects() const { return impl_->session->connects(); }

}  // namespace qtos::binance
