// `qtos data synth|import|export|info`: make, import and inspect market data.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/verbs.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/kline_export.hpp"
#include "runtime/data/kline_import.hpp"
#include "runtime/data/panel_info.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/time_format.hpp"

namespace qtos::api {
namespace {

struct SynthArgs {
  std::int32_t symbols = 50;
  std::int32_t bars = 2000;
  std::string interval = "1h";
  std::uint64_t seed = 42;
  std::string start = "2024-01-01";
  std::string out;
};

struct ImportArgs {
  std::string from, out, on_bad_row = "skip";
};

struct InfoArgs {
  std::string dir, format = "table";
  bool per_symbol = false;
};

void print_info(const PanelInfo& info, bool per_symbol) {
  std::printf("symbols   : %d\n", info.n_symbols);
  std::printf("interval  : %s\n", interval_name(info.interval_ms).c_str());
  std::printf("bars      : %d on the grid, %lld with data\n", info.n_bars, static_cast<long long>(info.bars_with_data));
  std::printf("range     : %s .. %s\n", time_format_iso(info.first_ms).c_str(), time_format_iso(info.last_ms).c_str());
  std::int64_t runs = 0, symbols_with_gaps = 0;
  for (const auto& s : info.symbols) {
    runs += s.gap_runs;
    symbols_with_gaps += s.gap_runs > 0;
  }
  std::printf("gaps      : %lld missing bars in %lld gaps across %lld symbols\n", static_cast<long long>(info.gap_bars),
              static_cast<long long>(runs), static_cast<long long>(symbols_with_gaps));
  if (!per_symbol) return;
  std::printf("\n%-16s %8s %-20s %-20s %6s %6s %14s %16s\n", "SYMBOL", "BARS", "FIRST", "LAST", "GAPS", "LONGEST", "LAST CLOSE",
              "AVG QUOTE VOL");
  for (const auto& s : info.symbols)
    std::printf("%-16s %8lld %-20s %-20s %6lld %6lld %14.6g %16.0f\n", s.symbol.c_str(), static_cast<long long>(s.bars),
                s.bars ? time_format_iso(s.first_ms).c_str() : "-", s.bars ? time_format_iso(s.last_ms).c_str() : "-",
                static_cast<long long>(s.gap_runs), static_cast<long long>(s.longest_gap), s.last_close, s.avg_quote_volume);
}

boost::json::object info_json(const PanelInfo& info) {
  boost::json::object o;
  o["symbols"] = info.n_symbols;
  o["interval"] = interval_name(info.interval_ms);
  o["bars"] = info.n_bars;
  o["bars_with_data"] = info.bars_with_data;
  o["first"] = time_format_iso(info.first_ms);
  o["last"] = time_format_iso(info.last_ms);
  o["gap_bars"] = info.gap_bars;
  boost::json::array arr;
  for (const auto& s : info.symbols)
    arr.push_back({{"symbol", s.symbol}, {"bars", s.bars}, {"first", s.bars ? time_format_iso(s.first_ms) : ""},
                   {"last", s.bars ? time_format_iso(s.last_ms) : ""}, {"gap_bars", s.gap_bars}, {"gap_runs", s.gap_runs},
                   {"longest_gap", s.longest_gap}, {"last_close", s.last_close}, {"avg_quote_volume", s.avg_quote_volume}});
  o["per_symbol"] = std::move(arr);
  return o;
}

}  // namespace

void verbs_data_register(CLI::App& app, CliContext&) {
  auto* data = app.add_subcommand("data", "make, import and inspect market data (native panel files)");
  data->require_subcommand(1);

  auto sa = std::make_shared<SynthArgs>();
  auto* synth = data->add_subcommand("synth", "generate a synthetic multi-symbol market with regimes (deterministic per seed)");
  synth->add_option("--symbols", sa->symbols, "number of symbols")->capture_default_str();
  synth->add_option("--bars", sa->bars, "bars per symbol")->capture_default_str();
  synth->add_option("--interval", sa->interval, "bar interval (1m, 5m, 15m, 1h, 4h, 1d, ...)")->capture_default_str();
  synth->add_option("--seed", sa->seed, "random seed")->capture_default_str();
  synth->add_option("--start", sa->start, "open time of the first bar (YYYY-MM-DD[THH:MM:SSZ])")->capture_default_str();
  synth->add_option("--out", sa->out, "output directory (writes DIR/panel.qtp)")->required();
  synth->callback([sa] {
    SynthOptions opt;
    opt.n_symbols = sa->symbols;
    opt.n_bars = sa->bars;
    opt.interval_ms = interval_parse_ms(sa->interval, "--interval");
    opt.seed = sa->seed;
    opt.t0_ms = time_parse(sa->start, "--start");
    Progress progress("synth", static_cast<std::uint64_t>(std::max(opt.n_symbols, 0)));
    auto market = synth_generate(opt, [&](std::int32_t done) { progress.update(static_cast<std::uint64_t>(done)); });
    progress.finish();
    std::filesystem::create_directories(sa->out);
    panel_save(market.panel, panel_path(sa->out));
    std::size_t counts[4] = {};
    for (auto r : market.regimes) ++counts[static_cast<int>(r)];
    std::printf("wrote %s: %d symbols x %d bars of %s from %s (seed %llu)\n", panel_path(sa->out).c_str(), opt.n_symbols,
                opt.n_bars, sa->interval.c_str(), time_format_iso(opt.t0_ms).c_str(), static_cast<unsigned long long>(opt.seed));
    std::printf("regimes: trend_up %.1f%%, trend_down %.1f%%, ranging %.1f%%, shock %.1f%% of bars\n",
                100.0 * counts[0] / opt.n_bars, 100.0 * counts[1] / opt.n_bars, 100.0 * counts[2] / opt.n_bars,
                100.0 * counts[3] / opt.n_bars);
  });

  auto ia = std::make_shared<ImportArgs>();
  auto* imp = data->add_subcommand("import", "import Binance public-data kline CSV files (SYMBOL-INTERVAL-YYYY-MM.csv)");
  imp->add_option("--from", ia->from, "directory of kline .csv files (searched recursively)")->required();
  imp->add_option("--out", ia->out, "output directory (writes DIR/panel.qtp)")->required();
  imp->add_option("--on-bad-row", ia->on_bad_row, "skip: count bad rows and go on; fail: stop at the first")
      ->check(CLI::IsMember({"skip", "fail"}))
      ->capture_default_str();
  imp->callback([ia] {
    ImportOptions opt;
    opt.on_bad_row = ia->on_bad_row == "fail" ? BadRowPolicy::fail : BadRowPolicy::skip;
    ImportReport rep;
    Progress progress("import", 0);
    auto panel = kline_import(ia->from, opt, rep, [&](std::size_t done, std::size_t total) {
      progress.set_total(total);
      progress.update(done);
    });
    progress.finish();
    std::filesystem::create_directories(ia->out);
    panel_save(panel, panel_path(ia->out));
    std::printf("imported %zu files, %zu rows read, %zu kept -> %s (%d symbols x %d bars of %s)\n", rep.files, rep.rows_read,
                rep.rows_kept, panel_path(ia->out).c_str(), panel.n_symbols(), panel.n_bars(),
                interval_name(panel.interval_ms()).c_str());
    std::printf("bad rows skipped: %zu", rep.bad_rows());
    for (const auto& [rule, n] : rep.bad_rows_by_rule)
      std::printf("%s%s=%zu", rule == rep.bad_rows_by_rule.begin()->first ? " (" : ", ", rule.c_str(), n);
    std::printf("%s\n", rep.bad_rows_by_rule.empty() ? "" : ")");
    std::printf("empty or unreadable files skipped: %zu\n", rep.bad_files);
    std::printf("duplicates: %zu identical dropped, %zu conflicting (first kept); out-of-order rows sorted: %zu\n",
                rep.duplicates_identical, rep.duplicates_conflicting, rep.out_of_order);
    std::printf("gaps: %zu missing bars in %zu gaps\n", rep.gap_bars, rep.gaps.size());
    for (std::size_t i = 0; i < rep.gaps.size() && i < 10; ++i)
      std::printf("  gap %s from %s, %lld bar(s)\n", rep.gaps[i].symbol.c_str(), time_format_iso(rep.gaps[i].from_ms).c_str(),
                  static_cast<long long>(rep.gaps[i].bars));
    if (rep.gaps.size() > 10) std::printf("  ... %zu more gaps (qtos data info %s --symbols)\n", rep.gaps.size() - 10, ia->out.c_str());
    for (const auto& m : rep.messages) std::printf("  %s\n", m.c_str());
  });

  auto ea = std::make_shared<std::pair<std::string, std::string>>();
  auto header = std::make_shared<bool>(false);
  auto* exp = data->add_subcommand("export", "write a panel as Binance-layout kline CSV files (one per symbol and month)");
  exp->add_option("--data", ea->first, "directory holding panel.qtp")->required();
  exp->add_option("--out", ea->second, "output directory for the .csv files")->required();
  exp->add_flag("--header", *header, "write a header line");
  exp->callback([ea, header] {
    const auto panel = panel_load(panel_path(ea->first));
    const auto files = kline_export(panel, ea->second, ExportOptions{*header, false});
    std::printf("wrote %zu files to %s\n", files, ea->second.c_str());
  });

  auto fa = std::make_shared<InfoArgs>();
  auto* info = data->add_subcommand("info", "print symbols, bar counts, time range and gaps of a data directory");
  info->add_option("dir", fa->dir, "directory holding panel.qtp")->required();
  info->add_option("--format", fa->format, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  info->add_flag("--symbols", fa->per_symbol, "one line per symbol");
  info->callback([fa] {
    const auto panel = panel_load(panel_path(fa->dir));
    const auto pi = panel_info(panel);
    if (fa->format == "json")
      std::cout << boost::json::serialize(info_json(pi)) << "\n";
    else
      print_info(pi, fa->per_symbol);
  });
}

}  // namespace qtos::api
