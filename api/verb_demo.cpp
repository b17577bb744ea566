// `qtos demo`: the main job of `make run` — a short tour of what qtos does today on its embedded default data.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "cpu/backend/device.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/registry/backends.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/panel_info.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/ranking/panel_ranking.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct DemoArgs {
  std::int32_t symbols = 100, bars = 2160;
  std::uint64_t seed = 42;
  std::string out;
};

struct SymbolPerf {
  std::string symbol;
  double ret = 0, vol = 0, max_dd = 0;
};

// Return, annualised volatility of log returns and maximum drawdown of one symbol over its data.
SymbolPerf perf(const MarketPanel& p, std::int32_t s) {
  SymbolPerf r{p.symbols()[static_cast<std::size_t>(s)]};
  const auto c = p.series(Column::close, s);
  double first = NAN, last = NAN, peak = 0, sum = 0, sum2 = 0, prev = NAN;
  std::int64_t n = 0;
  for (std::int32_t t = p.first_bar(s); t <= p.last_bar(s); ++t) {
    const double x = c[static_cast<std::size_t>(t)];
    if (!std::isfinite(x)) continue;
    if (!std::isfinite(first)) first = x;
    last = x;
    peak = std::max(peak, x);
    r.max_dd = std::max(r.max_dd, 1.0 - x / peak);
    if (std::isfinite(prev)) {
      const double lr = std::log(x / prev);
      sum += lr, sum2 += lr * lr, ++n;
    }
    prev = x;
  }
  r.ret = last / first - 1.0;
  const double var = n > 1 ? (sum2 - sum * sum / static_cast<double>(n)) / static_cast<double>(n - 1) : 0.0;
  r.vol = std::sqrt(var * interval_bars_per_year(p.interval_ms()));
  return r;
}

}  // namespace

void verbs_demo_register(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<DemoArgs>();
  auto* demo = app.add_subcommand("demo", "generate the embedded default market and report what every subsystem does with it");
  demo->add_option("--symbols", a->symbols, "symbols in the synthetic market, 1 to 1000000")
      ->check(integer_range(1, 1'000'000))
      ->capture_default_str();
  demo->add_option("--bars", a->bars, "hourly bars per symbol, 2 to 50000000")->check(integer_range(2, 50'000'000))->capture_default_str();
  demo->add_option("--seed", a->seed, "random seed")->check(unsigned_integer())->capture_default_str();
  demo->add_option("--out", a->out, "data directory (default: $QT_STATE_DIR/demo-data)");
  demo->callback([a, &ctx] {
    const Config& cfg = ctx.config();
    const auto& dev = device_report();
    std::printf("== qtos demo ==\n");
    std::printf("configuration: stage %s, exchange %s, device %s (CUDA devices: %d), emergency brake %s, fail-safe %s\n",
                std::string(stage_name(cfg.stage)).c_str(), std::string(exchange_name(cfg.exchange)).c_str(),
                std::string(device_name(cfg.device)).c_str(), dev.cuda_devices, cfg.emergency_brake ? "ON" : "off",
                cfg.fail_safe ? "on" : "off");
    std::printf("subsystems   :");
    for (std::size_t i = 0; i < kSubsystemCount; ++i)
      std::printf(" %s=%s", std::string(subsystem_name(static_cast<Subsystem>(i))).c_str(),
                  std::string(mode_name(cfg.subsystems[i].mode)).c_str());
    std::printf("\n\n");

    SynthOptions opt;
    opt.n_symbols = a->symbols;
    opt.n_bars = a->bars;
    opt.seed = a->seed;
    Progress progress("market data", static_cast<std::uint64_t>(std::max(opt.n_symbols, 1)));
    auto market = synth_generate(opt, [&](std::int32_t done) { progress.update(static_cast<std::uint64_t>(done)); });
    progress.finish();
    const std::string dir = a->out.empty() ? (std::filesystem::path(cfg.state_dir) / "demo-data").string() : a->out;
    std::filesystem::create_directories(dir);
    panel_save(market.panel, panel_path(dir));
    const auto reloaded = panel_load(panel_path(dir));  // what every other verb reads: mapped, checksum-verified
    const auto info = panel_info(reloaded);
    std::printf("market data  : %d symbols x %d bars of %s, %s .. %s, %lld bars with data, %lld missing (gaps/late listings excluded)\n",
                info.n_symbols, info.n_bars, interval_name(info.interval_ms).c_str(), time_format_iso(info.first_ms).c_str(),
                time_format_iso(info.last_ms).c_str(), static_cast<long long>(info.bars_with_data),
                static_cast<long long>(info.gap_bars));
    std::printf("saved to     : %s (try: qtos data info %s --symbols)\n", panel_path(dir).c_str(), dir.c_str());

    std::size_t counts[4] = {};
    for (auto r : market.regimes) ++counts[static_cast<int>(r)];
    std::printf("regimes      : trend_up %.0f%%, trend_down %.0f%%, ranging %.0f%%, shock %.0f%% of bars; final regime: %s\n",
                100.0 * counts[0] / opt.n_bars, 100.0 * counts[1] / opt.n_bars, 100.0 * counts[2] / opt.n_bars,
                100.0 * counts[3] / opt.n_bars, synth_regime_name(market.regimes.back()));

    std::vector<SymbolPerf> perfs;
    for (std::int32_t s = 0; s < reloaded.n_symbols(); ++s)
      if (reloaded.last_bar(s) >= 0) perfs.push_back(perf(reloaded, s));
    std::sort(perfs.begin(), perfs.end(), [](const auto& x, const auto& y) { return x.ret > y.ret; });
    std::vector<double> rets;
    for (const auto& p : perfs) rets.push_back(p.ret);
    std::sort(rets.begin(), rets.end());
    std::printf("performance  : median symbol return %+.1f%%, best %+.1f%%, worst %+.1f%%\n\n",
                100.0 * rets[rets.size() / 2], 100.0 * rets.back(), 100.0 * rets.front());
    std::printf("%-14s %10s %10s %10s\n", "SYMBOL", "RETURN", "ANN.VOL", "MAX DD");
    const std::size_t k = std::min<std::size_t>(5, perfs.size());
    for (std::size_t i = 0; i < perfs.size(); ++i) {
      if (i == k && perfs.size() > 2 * k) {
        std::printf("%-14s\n", "...");
        i = perfs.size() - k;
      }
      const auto& p = perfs[i];
      std::printf("%-14s %+9.1f%% %9.1f%% %9.1f%%\n", p.symbol.c_str(), 100 * p.ret, 100 * p.vol, 100 * p.max_dd);
    }

    // Opportunity ranking (Market Opportunity Ranker): indicators on the selected backend, robust z-scores, filters.
    auto backends = indicator_backends();
    const IndicatorBackend& backend = backend_select(backends, cfg.device);
    RankRequest req;
    const Ranking ranking = panel_rank(reloaded, req, backend);
    std::printf("\nopportunity ranking on %s as of %s: %d of %d symbols eligible; top %lld (QT_OPP_RANKER_TOP_N):\n",
                std::string(backend.name()).c_str(), time_format_iso(reloaded.time_ms(ranking.bar)).c_str(), ranking.eligible,
                reloaded.n_symbols(), static_cast<long long>(cfg.opp_ranker_top_n));
    std::printf("%-5s %-14s %8s\n", "RANK", "SYMBOL", "SCORE");
    for (const auto& row : ranking.top(std::min<std::size_t>(5, static_cast<std::size_t>(cfg.opp_ranker_top_n))))
      std::printf("%-5d %-14s %+8.3f\n", row.rank, row.symbol.c_str(), row.score);
    std::printf("\nnext: qtos rank --data %s --explain %s | qtos config show | qtos --help\n", dir.c_str(),
                ranking.eligible ? ranking.rows.front().symbol.c_str() : reloaded.symbols().front().c_str());
  });
}

}  // namespace qtos::api
