// Event bus throughput and latency against a naive bus (std::mutex + std::condition_variable queue, string topics,
// std::function handlers taking a polymorphic event and downcasting), measured in the same run.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/compare_reporter.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/clock/clock.hpp"

namespace {

using namespace qtos;

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ---- the naive baseline -------------------------------------------------------------------------------------------

struct NaiveEvent {
  virtual ~NaiveEvent() = default;
  std::uint64_t id = 0;
  std::int64_t ts = 0;
  std::string source;
};
struct NaiveBar : NaiveEvent {
  std::string symbol;
  double open = 0, high = 0, low = 0, close = 0, volume = 0;
  std::int64_t stamp = 0;
};

class NaiveBus {
 public:
  using Handler = std::function<void(const NaiveEvent&)>;
  void subscribe(const std::string& topic, Handler h) {
    std::lock_guard<std::mutex> lock(mutex_);
    handlers_[topic].push_back(std::move(h));
  }
  void publish(const std::string& topic, const NaiveEvent& e) {
    std::vector<Handler> copy;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = handlers_.find(topic);
      if (it == handlers_.end()) return;
      copy = it->second;
    }
    for (auto& h : copy) h(e);
  }
  void post(std::string topic, std::shared_ptr<const NaiveEvent> e) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.emplace_back(std::move(topic), std::move(e));
    }
    cv_.notify_one();
  }
  // Waits for one posted event and dispatches it.
  void pop_and_dispatch() {
    std::pair<std::string, std::shared_ptr<const NaiveEvent>> item;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [this] { return !queue_.empty(); });
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    publish(item.first, *item.second);
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, std::shared_ptr<const NaiveEvent>>> queue_;
  std::unordered_map<std::string, std::vector<Handler>> handlers_;
};

// ---- synchronous dispatch ---------------------------------------------------------------------------------------

void sync_qtos(benchmark::State& state, bool wall_clock) {
  const auto handlers = static_cast<int>(state.range(0));
  LiveClock live;
  SimClock sim(0);
  EventBus bus(wall_clock ? static_cast<Clock&>(live) : static_cast<Clock&>(sim));
  std::vector<Subscription> subs;
  double sum = 0;
  for (int i = 0; i < handlers; ++i) {
    std::string name = "handler-";
    name += std::to_string(i);  // (not "h" + to_string: GCC 12 warns falsely about it)
    subs.push_back(bus.subscribe<MarketBarClosed>(name, [&sum](const MarketBarClosed& e) { sum += e.close; }));
  }
  const SourceName source("feed");
  const Symbol symbol("BTCUSDT");
  double px = 0;
  for (auto _ : state) {
    bus.publish(source, MarketBarClosed{.symbol = symbol, .close = px});
    px += 1;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
  state.counters["deliveries_per_second"] = benchmark::Counter(static_cast<double>(state.iterations() * handlers), benchmark::Counter::kIsRate);
}

void sync_naive(benchmark::State& state) {
  const auto handlers = static_cast<int>(state.range(0));
  NaiveBus bus;
  double sum = 0;
  for (int i = 0; i < handlers; ++i)
    bus.subscribe("market.bar_closed", [&sum](const NaiveEvent& e) { sum += dynamic_cast<const NaiveBar&>(e).close; });
  LiveClock clock;
  std::uint64_t id = 0;
  double px = 0;
  for (auto _ : state) {
    NaiveBar bar;
    bar.id = ++id;
    bar.ts = clock.now();
    bar.source = "feed";
    bar.symbol = "BTCUSDT";
    bar.close = px;
    bus.publish("market.bar_closed", bar);
    px += 1;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

// ---- cross-thread post: throughput --------------------------------------------------------------------------------

constexpr std::int64_t kPostBatch = 1'000'000;

void post_qtos(benchmark::State& state, bool spin, bool wall_clock) {
  LiveClock live;
  SimClock sim(0);
  EventBus bus(wall_clock ? static_cast<Clock&>(live) : static_cast<Clock&>(sim));
  std::int64_t got = 0;
  auto sub = bus.subscribe<OrderFilled>("sink", [&got](const OrderFilled&) { ++got; });
  const SourceName source("exchange");
  for (auto _ : state) {
    got = 0;
    std::thread producer([&] {
      for (std::int64_t i = 0; i < kPostBatch; ++i)
        bus.post(source, OrderFilled{.order_id = static_cast<std::uint64_t>(i), .qty = 1, .price = 100});
    });
    while (got < kPostBatch) {
      if (spin)
        bus.drain();
      else
        bus.wait_and_drain(std::chrono::milliseconds(1));
    }
    producer.join();
  }
  const BusMetrics m = bus.metrics();
  state.SetItemsProcessed(state.iterations() * kPostBatch);
  state.counters["blocked_posts"] = static_cast<double>(m.blocked_posts);
  state.counters["dropped"] = static_cast<double>(m.dropped);
}

void post_naive(benchmark::State& state) {
  NaiveBus bus;
  LiveClock clock;
  std::int64_t got = 0;
  bus.subscribe("orders.filled", [&got](const NaiveEvent&) { ++got; });
  for (auto _ : state) {
    got = 0;
    std::thread producer([&] {
      for (std::int64_t i = 0; i < kPostBatch; ++i) {  // the same work as qtos: clock time, source, symbol
        auto e = std::make_shared<NaiveBar>();
        e->id = static_cast<std::uint64_t>(i);
        e->ts = clock.now();
        e->source = "exchange";
        e->symbol = "BTCUSDT";
        e->close = 100;
        bus.post("orders.filled", std::move(e));
      }
    });
    while (got < kPostBatch) bus.pop_and_dispatch();
    producer.join();
  }
  state.SetItemsProcessed(state.iterations() * kPostBatch);
}

// ---- cross-thread post: latency at a steady 1M events/s -----------------------------------------------------------

constexpr std::int64_t kPacedEvents = 1'000'000;
constexpr std::int64_t kPaceNs = 1'000;  // one event per microsecond

template <class PostFn>
void paced_producer(PostFn post) {
  const std::int64_t t0 = steady_ns();
  for (std::int64_t i = 0; i < kPacedEvents; ++i) {
    const std::int64_t due = t0 + i * kPaceNs;
    while (steady_ns() < due) {
    }
    post(steady_ns());
  }
}

void report_latency(benchmark::State& state, const LatencyHistogram& h, double seconds) {
  state.counters["p50_us"] = static_cast<double>(h.percentile(0.50)) / 1e3;
  state.counters["p99_us"] = static_cast<double>(h.percentile(0.99)) / 1e3;
  state.counters["p999_us"] = static_cast<double>(h.percentile(0.999)) / 1e3;
  state.counters["max_us"] = static_cast<double>(h.max()) / 1e3;
  state.counters["achieved_per_second"] = static_cast<double>(h.count()) / seconds;
}

void latency_qtos(benchmark::State& state, bool spin) {
  LiveClock clock;
  EventBus bus(clock);
  LatencyHistogram h;
  std::int64_t got = 0;
  auto sub = bus.subscribe<MarketBarClosed>("sink", [&](const MarketBarClosed& e) {
    h.record(static_cast<std::uint64_t>(steady_ns() - e.open_time));
    ++got;
  });
  const SourceName source("feed");
  double seconds = 0;
  std::atomic<std::int64_t> dropped{0};
  for (auto _ : state) {
    const std::int64_t t0 = steady_ns();
    std::thread producer([&] {
      paced_producer([&](std::int64_t stamp) {
        if (bus.post(source, MarketBarClosed{.open_time = stamp}) == PostOutcome::dropped) dropped.fetch_add(1);
      });
    });
    while (got < kPacedEvents - dropped.load(std::memory_order_relaxed)) {
      if (spin)
        bus.drain();
      else
        bus.wait_and_drain(std::chrono::milliseconds(1));
    }
    producer.join();
    seconds += static_cast<double>(steady_ns() - t0) / 1e9;
  }
  report_latency(state, h, seconds);
  state.counters["dropped"] = static_cast<double>(bus.metrics().dropped);
}

void latency_naive(benchmark::State& state) {
  NaiveBus bus;
  LiveClock clock;
  LatencyHistogram h;
  std::int64_t got = 0;
  bus.subscribe("market.bar_closed", [&](const NaiveEvent& e) {
    h.record(static_cast<std::uint64_t>(steady_ns() - dynamic_cast<const NaiveBar&>(e).stamp));
    ++got;
  });
  double seconds = 0;
  for (auto _ : state) {
    const std::int64_t t0 = steady_ns();
    std::thread producer([&] {
      paced_producer([&](std::int64_t stamp) {
        auto e = std::make_shared<NaiveBar>();
        e->ts = clock.now();
        e->source = "feed";
        e->stamp = stamp;
        bus.post("market.bar_closed", std::move(e));
      });
    });
    while (got < kPacedEvents) bus.pop_and_dispatch();
    producer.join();
    seconds += static_cast<double>(steady_ns() - t0) / 1e9;
  }
  report_latency(state, h, seconds);
}

// "qtos" stamps every event from a LiveClock like the naive bus does; "qtos-simclock" shows the cost without it.
BENCHMARK_CAPTURE(sync_qtos, live, true)->Name("sync_1_handler/qtos")->Arg(1)->MinTime(1.0);
BENCHMARK_CAPTURE(sync_qtos, sim, false)->Name("sync_1_handler/qtos-simclock")->Arg(1)->MinTime(1.0);
BENCHMARK(sync_naive)->Name("sync_1_handler/naive")->Arg(1)->MinTime(1.0);
BENCHMARK_CAPTURE(sync_qtos, live, true)->Name("fanout_8_handlers/qtos")->Arg(8)->MinTime(1.0);
BENCHMARK(sync_naive)->Name("fanout_8_handlers/naive")->Arg(8)->MinTime(1.0);
// The owner sleeps when the queue is empty ("qtos", as bus_run does, and as the naive owner waits on its condition
// variable) or spins on drain() ("qtos-spin", lowest latency when a core can be dedicated to it).
BENCHMARK_CAPTURE(post_qtos, wait, false, true)->Name("post_1_producer/qtos")->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(post_qtos, spin, true, true)->Name("post_1_producer/qtos-spin")->Iterations(5)->UseRealTime();
BENCHMARK_CAPTURE(post_qtos, sim, false, false)->Name("post_1_producer/qtos-simclock")->Iterations(5)->UseRealTime();
BENCHMARK(post_naive)->Name("post_1_producer/naive")->Iterations(3)->UseRealTime();
BENCHMARK_CAPTURE(latency_qtos, spin, true)->Name("latency_1M_per_s/qtos")->Iterations(1)->UseRealTime();
BENCHMARK_CAPTURE(latency_qtos, wait, false)->Name("latency_1M_per_s/qtos-wait")->Iterations(1)->UseRealTime();
BENCHMARK(latency_naive)->Name("latency_1M_per_s/naive")->Iterations(1)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  qtos::bench::CompareReporter reporter({
      {"sync_1_handler", "items_per_second", true, 20e6, "M/s"},
      {"fanout_8_handlers", "items_per_second", true, 5e6, "M/s"},
      {"post_1_producer", "items_per_second", true, 5e6, "M/s"},
      {"latency_1M_per_s", "p99_us", false, 20, "us"},
      {"latency_1M_per_s", "p50_us", false, 0, "us"},
      {"latency_1M_per_s", "achieved_per_second", true, 0, "M/s"},
  });
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
