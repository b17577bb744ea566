// Event log: every event type round-trips, torn tails and corruption are detected, and replaying a recorded run
// gives the same handler calls (and runs periodic jobs at their simulated times).
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/bus/event_log.hpp"
#include "tests/runtime/test_util.hpp"

namespace qtos {
namespace {

using ::testing::HasSubstr;
using test::TempDir;

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

}  // namespace
}  // namespace qtos
