// `qtos events dump FILE`: the recorded events in order, one per line, filters, and clear errors for bad files.
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/bus/event_log.hpp"
#include "tests/support/event_log_v1.hpp"

namespace qtos {
namespace events_dump_test {

using ::testing::HasSubstr;

struct Output {
  int status = -1;
  std::string text;
};

Output run(const std::string& args) {
  Output out;
  const std::string cmd = std::string(QTOS_BIN) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.text.append(buf, n);
  const int st = ::pclose(p);
  out.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

class EventsDump : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("qtos-dump-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "run.qlog").string();
    SimClock clock(1'704'067'200LL * kNsPerSecond);
    EventBus bus(clock);
    EventRecorder recorder(bus, path_);
    bus.publish("feed", MarketBarClosed{.symbol = "BTCUSDT", .close = 42000.5});
    bus.publish("feed", MarketBarClosed{.symbol = "ETHUSDT", .close = 2000, .volume = 3, .quote_volume = 5999.5,
                                        .trades = 12});
    clock.advance_by(kNsPerSecond);
    bus.publish("risk", OrderDenied{.order_id = 7, .symbol = "ETHUSDT", .qty = 2, .reason = DenyReason::emergency_brake,
                                    .policy_version = 3, .detail = "brake engaged"});
    bus.publish("exchange", OrderFilled{.order_id = 8, .symbol = "BTCUSDT", .qty = 0.5, .price = 42001});
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(EventsDump, PrintsEveryEventInOrder) {
  const Output o = run("events dump " + path_);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_EQ(o.text,
            "#1 2024-01-01T00:00:00.000000000Z MarketBarClosed topic=market.bar_closed source=feed symbol=BTCUSDT "
            "interval_s=60 open_time=0 open=0 high=0 low=0 close=42000.5 volume=0 quote_volume=nan trades=-1\n"
            "#2 2024-01-01T00:00:00.000000000Z MarketBarClosed topic=market.bar_closed source=feed symbol=ETHUSDT "
            "interval_s=60 open_time=0 open=0 high=0 low=0 close=2000 volume=3 quote_volume=5999.5 trades=12\n"
            "#3 2024-01-01T00:00:01.000000000Z OrderDenied topic=orders.denied source=risk order_id=7 strategy= "
            "symbol=ETHUSDT side=BUY qty=2 price=0 reason=EMERGENCY_BRAKE policy_version=3 detail=\"brake engaged\"\n"
            "#4 2024-01-01T00:00:01.000000000Z OrderFilled topic=orders.filled source=exchange order_id=8 "
            "symbol=BTCUSDT side=BUY qty=0.5 price=42001 fee=0 remaining_qty=0\n"
            "# 4 events in " + path_ + ", 4 shown\n");
}

TEST_F(EventsDump, ReadsVersion1LogsWithQuoteVolumeUnknown) {
  const std::string old = (dir_ / "v1.qlog").string();
  std::ofstream(old, std::ios::binary) << test::log_header(1)
                                       << test::log_record(test::v1_bar_body(1, 1'704'067'200LL * kNsPerSecond, "BTCUSDT", 42000, 3))
                                       << test::log_record(test::v1_fill_body(2, 1'704'067'201LL * kNsPerSecond));
  const Output o = run("events dump " + old);
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_THAT(o.text, HasSubstr("MarketBarClosed topic=market.bar_closed source=feed symbol=BTCUSDT interval_s=3600 "
                                "open_time=1704063600000000000 open=41999 high=42002 low=41997 close=42000 volume=3 "
                                "quote_volume=nan trades=-1\n"));
  EXPECT_THAT(o.text, HasSubstr("OrderFilled topic=orders.filled source=exchange order_id=8 symbol=ETHUSDT side=SELL"));
  EXPECT_THAT(o.text, HasSubstr("# 2 events in " + old + ", 2 shown; format version 1"));
}

TEST_F(EventsDump, FiltersByTypeAndTopic) {
  Output o = run("events dump " + path_ + " --type OrderDenied");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_THAT(o.text, HasSubstr("OrderDenied"));
  EXPECT_THAT(o.text, ::testing::Not(HasSubstr("MarketBarClosed topic")));
  EXPECT_THAT(o.text, HasSubstr("4 events in"));
  o = run("events dump " + path_ + " --topic 'orders.*' --limit 1");
  ASSERT_EQ(o.status, 0) << o.text;
  EXPECT_THAT(o.text, HasSubstr("#3 "));
  EXPECT_THAT(o.text, ::testing::Not(HasSubstr("#4 ")));
  o = run("events dump " + path_ + " --type Nope");
  EXPECT_EQ(o.status, 1);
  EXPECT_THAT(o.text, HasSubstr("'Nope' is not an event type"));
}

TEST_F(EventsDump, RefusesFilesThatAreNotLogsOrAreCorrupt) {
  const std::string text = (dir_ / "notes.txt").string();
  std::ofstream(text) << "not a log";
  Output o = run("events dump " + text);
  EXPECT_EQ(o.status, 1);
  EXPECT_THAT(o.text, HasSubstr(text));
  {
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x55');
  }
  o = run("events dump " + path_);
  EXPECT_EQ(o.status, 1);
  EXPECT_THAT(o.text, HasSubstr("checksum mismatch"));
  o = run("events dump " + (dir_ / "missing.qlog").string());
  EXPECT_EQ(o.status, 1);
  EXPECT_THAT(o.text, HasSubstr("cannot open"));
}

}  // namespace events_dump_test
}  // namespace qtos
