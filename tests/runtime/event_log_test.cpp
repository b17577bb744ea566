// Event log: every event type round-trips, torn tails and corruption are detected, and replaying a recorded run
// gives the same handler calls (and runs periodic jobs at their simulated times).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/bus/event_log.hpp"
#include "tests/runtime/test_util.hpp"
#include "tests/support/event_log_v1.hpp"

namespace qtos {
namespace event_log_test {

using ::testing::HasSubstr;
using test::TempDir;
using test::log_header;
using test::log_record;
using test::v1_bar_body;
using test::v1_fill_body;

constexpr TimeNs kStart = 1'704'067'200LL * kNsPerSecond;

std::vector<AnyEvent> read_all(const std::string& path, std::uint64_t* torn = nullptr) {
  EventLogReader reader(path);
  std::vector<AnyEvent> out;
  for (;;) {
    auto r = reader.next();
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    if (!r.ok() || !r.value()) break;
    out.push_back(*r.value());
  }
  if (torn) *torn = reader.torn_tail();
  return out;
}

TEST(EventCodec, EveryEventTypeRoundTrips) {
  auto events = test::sample_events();
  ASSERT_EQ(events.size(), kEventTypeCount);
  std::uint64_t id = 1;
  for (auto& e : events) {
    std::visit([&](auto& ev) { ev.header = EventHeader{id, kStart + static_cast<TimeNs>(id), "src-" + std::to_string(id)}; }, e);
    ++id;
    const std::string body = event_encode(e);
    auto back = event_decode(body);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(back.value(), e) << event_type_name(event_type(e));
    // Every truncation of a body is refused, never misread.
    for (std::size_t cut = 0; cut < body.size(); cut += 7)
      EXPECT_FALSE(event_decode(std::string_view(body).substr(0, cut)).ok()) << event_type_name(event_type(e)) << " cut " << cut;
  }
}

TEST(EventCodec, BarQuoteVolumeAndTradesRoundTripKnownOrUnknown) {
  MarketBarClosed known{.symbol = "BTCUSDT", .close = 100.0, .volume = 2.0, .quote_volume = 215.5, .trades = 9};
  auto back = event_decode(event_encode(known));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& k = std::get<MarketBarClosed>(back.value());
  EXPECT_TRUE(k.quote_volume_known());
  EXPECT_EQ(k.quote_volume, 215.5);
  EXPECT_EQ(k.trades, 9);

  const MarketBarClosed unknown{.symbol = "BTCUSDT", .close = 100.0, .volume = 2.0};  // a publisher with base volume only
  EXPECT_FALSE(unknown.quote_volume_known());
  EXPECT_EQ(unknown.trades, kUnknownTrades);
  back = event_decode(event_encode(unknown));
  ASSERT_TRUE(back.ok()) << back.error().message;
  const auto& u = std::get<MarketBarClosed>(back.value());
  EXPECT_TRUE(std::isnan(u.quote_volume));
  EXPECT_EQ(u.trades, -1);
  EXPECT_EQ(u, unknown);  // an unknown value equals an unknown one
  EXPECT_NE(u, known);
  EXPECT_THAT(event_format_fields(back.value()), HasSubstr("volume=2 quote_volume=nan trades=-1"));
}

TEST(EventCodec, FormatsFieldsByName) {
  const auto events = test::sample_events();
  const std::string denied = event_format_fields(events[static_cast<std::size_t>(EventType::order_denied)]);
  EXPECT_EQ(denied,
            "order_id=43 strategy=rsi-mean-rev symbol=SOLUSDT side=BUY qty=10 price=20.5 reason=MAX_OPEN_POSITIONS "
            "policy_version=7 detail=\"5 of 5 positions open\"");
  const std::string opp = event_format_fields(events[static_cast<std::size_t>(EventType::opportunities_updated)]);
  EXPECT_EQ(opp, "top=[{symbol=BTCUSDT score=0.9 volume_24h=1000000000} {symbol=ETHUSDT score=0.7 volume_24h=500000000}] "
                 "universe_size=120");
  const std::string policy = event_format_fields(events[static_cast<std::size_t>(EventType::policy_updated)]);
  EXPECT_THAT(policy, HasSubstr("reason=\"drawdown \\\"rising\\\"\\x0afast\""));
}

TEST(EventLog, WritesReadsAndAppendsAcrossReopen) {
  TempDir dir;
  const std::string path = dir.file("events.qlog");
  const auto events = test::sample_events();
  {
    EventLogWriter w(path);
    for (std::size_t i = 0; i < 10; ++i) w.append(events[i]);
  }
  {
    EventLogWriter w(path);
    for (std::size_t i = 10; i < events.size(); ++i) w.append(events[i]);
    EXPECT_EQ(w.records(), events.size() - 10);
  }
  EXPECT_EQ(read_all(path), events);
}

TEST(EventLog, TornTailIsIgnoredByReadersAndCutOffByTheNextWriter) {
  TempDir dir;
  const std::string path = dir.file("events.qlog");
  const auto events = test::sample_events();
  {
    EventLogWriter w(path);
    for (const auto& e : events) w.append(e);
  }
  const auto full = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, full - 5);  // a crash in the middle of the last record
  std::uint64_t torn = 0;
  auto got = read_all(path, &torn);
  EXPECT_EQ(got.size(), events.size() - 1);
  EXPECT_GT(torn, 0u);
  {
    EventLogWriter w(path);
    w.append(events[0]);
  }
  got = read_all(path, &torn);
  EXPECT_EQ(torn, 0u);
  ASSERT_EQ(got.size(), events.size());
  EXPECT_EQ(got.back(), events[0]);
}

TEST(EventLog, CorruptionIsReportedWithItsOffset) {
  TempDir dir;
  const std::string path = dir.file("events.qlog");
  const auto events = test::sample_events();
  {
    EventLogWriter w(path);
    for (const auto& e : events) w.append(e);
  }
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    f.put('\x7f');
  }
  EventLogReader reader(path);
  std::size_t good = 0;
  for (;;) {
    auto r = reader.next();
    if (!r.ok()) {
      EXPECT_THAT(r.error().message, HasSubstr("offset"));
      EXPECT_THAT(r.error().message, HasSubstr(path));
      break;
    }
    ASSERT_TRUE(r.value().has_value()) << "corruption went unnoticed";
    ++good;
  }
  EXPECT_LT(good, events.size());
  EXPECT_THROW(EventLogWriter{path}, std::runtime_error);  // never append after a corrupt record
}

TEST(EventLog, NonLogFilesAreRefusedNamingThePath) {
  TempDir dir;
  const std::string path = dir.file("not-a-log.txt");
  std::ofstream(path) << "hello, this is not an event log";
  try {
    EventLogReader r(path);
    FAIL() << "accepted a text file";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("magic"));
  }
  EXPECT_THROW(EventLogReader{dir.file("missing.qlog")}, std::runtime_error);
  EXPECT_THROW(EventLogWriter{path}, std::runtime_error);
}

std::string write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(EventLogVersions, Version1LogsAreReadWithQuoteVolumeAndTradesUnknown) {
  TempDir dir;
  const std::string path = write_file(dir.file("v1.qlog"), log_header(1) + log_record(v1_bar_body(1, kStart, "BTCUSDT", 42000, 3)) +
                                                                log_record(v1_fill_body(2, kStart + 5)));
  EventLogReader reader(path);
  EXPECT_EQ(reader.version(), 1u);
  const auto events = read_all(path);
  ASSERT_EQ(events.size(), 2u);
  const auto& bar = std::get<MarketBarClosed>(events[0]);
  EXPECT_EQ(bar.header, (EventHeader{1, kStart, "feed"}));
  EXPECT_EQ(bar.symbol.str(), "BTCUSDT");
  EXPECT_EQ(bar.interval_s, 3600);
  EXPECT_EQ(bar.open, 41999);
  EXPECT_EQ(bar.high, 42002);
  EXPECT_EQ(bar.low, 41997);
  EXPECT_EQ(bar.close, 42000);
  EXPECT_EQ(bar.volume, 3);
  EXPECT_FALSE(bar.quote_volume_known());
  EXPECT_EQ(bar.trades, kUnknownTrades);
  const auto& fill = std::get<OrderFilled>(events[1]);
  EXPECT_EQ(fill.order_id, 8u);
  EXPECT_EQ(fill.side, Side::sell);
  EXPECT_EQ(fill.price, 2000.0);

  // A replay delivers the old bars, quote volume unknown.
  SimClock clock(0);
  EventBus bus(clock);
  std::vector<MarketBarClosed> bars;
  auto sub = bus.subscribe<MarketBarClosed>("bars", [&](const MarketBarClosed& e) { bars.push_back(e); });
  auto stats = event_log_replay(path, bus, &clock);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats.value().events, 2u);
  ASSERT_EQ(bars.size(), 1u);
  EXPECT_TRUE(std::isnan(bars[0].quote_volume));

  // Records of two layouts never share a file: appending to a version-1 log is refused, naming file and version.
  try {
    EventLogWriter w(path);
    FAIL() << "appended to a version-1 log";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(path));
    EXPECT_THAT(e.what(), HasSubstr("format version 1"));
  }
  EXPECT_EQ(read_all(path).size(), 2u);  // untouched
}

TEST(EventLogVersions, Version1BodiesDecodeOnlyTheVersion1Layout) {
  // A version-1 bar body read as version 2 is short (the quote volume is missing), and a version-2 body read as
  // version 1 has bytes left over: the version in the header decides, never a guess.
  const std::string v1 = v1_bar_body(1, kStart, "BTCUSDT", 100, 1);
  EXPECT_TRUE(event_decode(v1, 1).ok());
  EXPECT_FALSE(event_decode(v1, 2).ok());
  const std::string v2 = event_encode(MarketBarClosed{.symbol = "BTCUSDT", .close = 1, .quote_volume = 5, .trades = 2});
  EXPECT_FALSE(event_decode(v2, 1).ok());
  // Version 1 had no UniverseSuggested (type 18).
  const std::string suggested = event_encode(UniverseSuggested{.universe = {"BTCUSDT"}});
  EXPECT_TRUE(event_decode(suggested, 2).ok());
  const auto old = event_decode(suggested, 1);
  ASSERT_FALSE(old.ok());
  EXPECT_THAT(old.error().message, HasSubstr("unknown event type 18 in a version-1 log"));
  EXPECT_FALSE(event_decode(v1, 0).ok());
  EXPECT_FALSE(event_decode(v1, kEventLogVersion + 1).ok());
}

TEST(EventLogVersions, NewerVersionsAreRefusedNamingFileAndVersion) {
  TempDir dir;
  const std::string path = write_file(dir.file("future.qlog"), log_header(kEventLogVersion + 1));
  for (int i = 0; i < 2; ++i) {
    try {
      if (i == 0)
        EventLogReader r(path);
      else
        EventLogWriter w(path);
      FAIL() << "accepted format version " << kEventLogVersion + 1;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr(path));
      EXPECT_THAT(e.what(), HasSubstr("format version " + std::to_string(kEventLogVersion + 1)));
    }
  }
}

TEST(EventLogVersions, NewLogsAreWrittenInTheCurrentVersion) {
  TempDir dir;
  const std::string path = dir.file("new.qlog");
  {
    EventLogWriter w(path);
    w.append(MarketBarClosed{.symbol = "BTCUSDT", .close = 10, .volume = 3, .quote_volume = 29.5, .trades = 4});
  }
  std::ifstream in(path, std::ios::binary);
  char header[16];
  in.read(header, 16);
  std::uint32_t version = 0;
  std::memcpy(&version, header + 8, 4);
  EXPECT_EQ(version, 3u);
  EXPECT_EQ(EventLogReader(path).version(), kEventLogVersion);
  const auto events = read_all(path);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(std::get<MarketBarClosed>(events[0]).quote_volume, 29.5);
  EXPECT_EQ(std::get<MarketBarClosed>(events[0]).trades, 4);
}

// One observed handler call: who saw which event, exactly.
struct Call {
  std::string subscriber;
  AnyEvent event;
  bool operator==(const Call&) const = default;
};

// The subscribers whose calls are compared between the live run and the replay.
struct Observers {
  std::vector<Call> calls;
  std::vector<Subscription> subs;
  explicit Observers(EventBus& bus) {
    subs.push_back(bus.subscribe<MarketBarClosed>("bars", [this](const MarketBarClosed& e) { calls.push_back({"bars", e}); }));
    subs.push_back(bus.subscribe_topics("orders", "orders.*", [this](const EventRef& e) { calls.push_back({"orders", e.to_any()}); }));
    subs.push_back(bus.subscribe<HealthStatusChanged>("health", [this](const HealthStatusChanged& e) { calls.push_back({"health", e}); }));
    subs.push_back(bus.subscribe_topics("all", "#", [this](const EventRef& e) { calls.push_back({"all", e.to_any()}); }));
  }
};

TEST(EventLog, ReplayOfARecordedRunGivesIdenticalHandlerCalls) {
  TempDir dir;
  const std::string path = dir.file("run.qlog");
  std::vector<Call> live_calls;
  {
    SimClock clock(kStart);
    EventBus bus(clock);
    EventRecorder recorder(bus, path);
    Observers observers(bus);
    // A small trading loop: bars produce signals, signals produce orders (re-entrant), a broken handler reports.
    auto strategy = bus.subscribe<MarketBarClosed>("strategy", [&](const MarketBarClosed& e) {
      if (static_cast<int>(e.close) % 3 == 0)
        bus.publish("strategy", SignalGenerated{.strategy = "s", .symbol = e.symbol, .confidence = 0.7, .price = e.close});
    });
    auto executor = bus.subscribe<SignalGenerated>("executor", [&](const SignalGenerated& e) {
      if (e.price > 20)
        bus.publish("risk", OrderDenied{.symbol = e.symbol, .reason = DenyReason::low_confidence, .detail = "late"});
      else
        bus.publish("executor", OrderSubmitted{.order_id = static_cast<std::uint64_t>(e.price), .symbol = e.symbol});
    });
    auto broken = bus.subscribe<OrderSubmitted>("broken", [](const OrderSubmitted&) -> void { throw std::runtime_error("bug"); });
    std::thread feed([&] {
      for (int i = 0; i < 15; ++i) bus.post("feed", MarketBarClosed{.symbol = "ETHUSDT", .close = 100.0 + i});
    });
    for (int i = 0; i < 30; ++i) {
      clock.advance_by(60 * kNsPerSecond);
      bus.publish("feed", MarketBarClosed{.symbol = "BTCUSDT", .close = static_cast<double>(i)});
      bus.drain();
    }
    feed.join();
    while (bus.drain() > 0) {
    }
    live_calls = observers.calls;
  }
  ASSERT_GT(live_calls.size(), 100u);

  SimClock clock(kStart);
  EventBus bus(clock);
  Observers observers(bus);
  auto stats = event_log_replay(path, bus, &clock);
  ASSERT_TRUE(stats.ok()) << stats.error().message;
  EXPECT_EQ(stats.value().torn_tail, 0u);
  ASSERT_EQ(observers.calls.size(), live_calls.size());
  for (std::size_t i = 0; i < live_calls.size(); ++i)
    ASSERT_EQ(observers.calls[i], live_calls[i]) << "call " << i << ": " << event_format_line(live_calls[i].event);
  EXPECT_GE(clock.now(), kStart + 30 * 60 * kNsPerSecond);
}

TEST(EventLog, ReplayDrivesPeriodicJobsAtSimulatedTimes) {
  TempDir dir;
  const std::string path = dir.file("month.qlog");
  constexpr int kBars = 30 * 24 * 60;  // a month of one-minute bars
  {
    SimClock clock(kStart);
    EventBus bus(clock);
    EventRecorder recorder(bus, path);
    for (int i = 0; i < kBars; ++i) {
      clock.advance_to(kStart + static_cast<TimeNs>(i + 1) * 60 * kNsPerSecond);
      bus.publish("feed", MarketBarClosed{.symbol = "BTCUSDT", .open_time = clock.now() - 60 * kNsPerSecond,
                                          .close = static_cast<double>(i)});
    }
  }
  const auto wall0 = std::chrono::steady_clock::now();
  SimClock clock(kStart);
  EventBus bus(clock);
  int bars_seen = 0;
  std::vector<std::pair<TimeNs, int>> coordination;  // (time, bars seen before the job ran)
  int healing = 0;
  auto count = bus.subscribe<MarketBarClosed>("counter", [&](const MarketBarClosed&) { ++bars_seen; });
  auto t1 = clock.schedule_every(60 * kNsPerSecond, [&](TimeNs now) { coordination.emplace_back(now, bars_seen); });
  auto t2 = clock.schedule_every(120 * kNsPerSecond, [&](TimeNs) { ++healing; });
  auto stats = event_log_replay(path, bus, &clock);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats.value().events, static_cast<std::uint64_t>(kBars));
  EXPECT_EQ(bars_seen, kBars);
  ASSERT_EQ(coordination.size(), static_cast<std::size_t>(kBars));
  for (int k = 0; k < kBars; ++k) {
    ASSERT_EQ(coordination[k].first, kStart + static_cast<TimeNs>(k + 1) * 60 * kNsPerSecond);
    ASSERT_EQ(coordination[k].second, k);  // a job due at T runs before the bar stamped T is delivered
  }
  EXPECT_EQ(healing, kBars / 2);
  EXPECT_LT(wall_s, 5.0);
}

TEST(EventLog, RecorderFlushesOnItsPeriod) {
  TempDir dir;
  const std::string path = dir.file("flush.qlog");
  SimClock clock(0);
  EventBus bus(clock);
  EventRecorder recorder(bus, path, kNsPerSecond);
  bus.publish("x", OrderFilled{.order_id = 1});
  EXPECT_EQ(read_all(path).size(), 0u);  // still buffered
  clock.advance_by(kNsPerSecond);
  const auto after = read_all(path);
  ASSERT_EQ(after.size(), 1u);  // written by the periodic flush, while the recorder is still open
  EXPECT_EQ(event_header(after[0]).id, 1u);
}

TEST(EventLog, ReplayFilterSkipsTypes) {
  TempDir dir;
  const std::string path = dir.file("f.qlog");
  {
    SimClock clock(0);
    EventBus bus(clock);
    EventRecorder recorder(bus, path);
    bus.publish("x", MarketBarClosed{});
    bus.publish("x", OrderFilled{});
    bus.publish("x", MarketBarClosed{});
  }
  SimClock clock(0);
  EventBus bus(clock);
  int bars = 0, fills = 0;
  auto a = bus.subscribe<MarketBarClosed>("a", [&](const MarketBarClosed&) { ++bars; });
  auto b = bus.subscribe<OrderFilled>("b", [&](const OrderFilled&) { ++fills; });
  auto stats = event_log_replay(path, bus, nullptr, [](EventType t) { return t == EventType::market_bar_closed; });
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(bars, 2);
  EXPECT_EQ(fills, 0);
  EXPECT_EQ(stats.value().skipped, 1u);
}

}  // namespace event_log_test
}  // namespace qtos

namespace qtos {
namespace event_log_test {

TEST(EventJson, EveryEventTypeHasAJsonFormWithItsFieldNames) {
  for (const AnyEvent& e : test::sample_events()) {
    const boost::json::object o = event_json(e);
    EXPECT_FALSE(o.empty() && event_type(e) != EventType::market_bar_closed) << event_type_name(event_type(e));
  }
  const boost::json::object bar = event_json(AnyEvent(MarketBarClosed{.symbol = "BTCUSDT", .close = 10.5, .volume = 3}));
  EXPECT_EQ(bar.at("symbol").as_string(), "BTCUSDT");
  EXPECT_EQ(bar.at("close").as_double(), 10.5);
  EXPECT_TRUE(bar.at("quote_volume").is_null());  // unknown (NaN) is null, not a number
  EXPECT_EQ(bar.at("trades").as_int64(), -1);
  const boost::json::object denied =
      event_json(AnyEvent(OrderDenied{.order_id = 7, .symbol = "ETHUSDT", .reason = DenyReason::max_open_positions, .detail = "full \"book\""}));
  EXPECT_EQ(denied.at("reason").as_string(), "MAX_OPEN_POSITIONS");
  EXPECT_EQ(denied.at("detail").as_string(), "full \"book\"");
  const boost::json::object ranked = event_json(AnyEvent(OpportunitiesUpdated{.top = {{"BTCUSDT", 0.9, 1e6}}, .universe_size = 3}));
  EXPECT_EQ(ranked.at("top").as_array().at(0).as_object().at("symbol").as_string(), "BTCUSDT");
  // Serialises to valid JSON and back.
  EXPECT_EQ(boost::json::parse(boost::json::serialize(denied)).as_object(), denied);
}

}  // namespace event_log_test
}  // namespace qtos
