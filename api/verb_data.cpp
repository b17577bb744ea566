// `qtos data synth|import|export|info`: make, import and inspect market data.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "runtime/data/interval.hpp"
#include "runtime/data/kline_export.hpp"
#include "runtime/data/kline_import.hpp"
#include "runtime/data/panel_info.hpp"
#include "runtime/data/synth.hpp"
#include "runtime/util/atomic_file.hpp"
#include "runtime/util/progress.hpp"
#include "runtime/util/stop_token.hpp"
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
  double planted_momentum = 0.0;
  double planted_reversion = 0.0;
  std::int32_t planted_flip = 0;
  bool random_walk = false;
};

struct ImportArgs {
  std::string from, out, on_bad_row = "skip";
};

struct InfoArgs {
  std::string dir, format = "table";
  bool per_symbol = false;
};

/// A usage error: printed like every error, exit status 2.
[[noreturn]] void usage_error(const std::string& message) { throw UsageError(message); }

/// Refuses an empty path option.
void path_option_check(const std::string& value, const char* option) {
  if (value.empty()) usage_error(std::string(option) + ": must not be empty; expected a directory");
}

/// Refuses an output directory of `option` that is a file, and removes the temporaries a crashed earlier run left in it.
void out_dir_check(const std::string& dir, const char* option) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_directory(dir, ec))
    throw WriteError(std::string(option) + " '" + dir + "' is a file, expected a directory to write into");
  atomic_temp_cleanup(dir);
}

/// Makes the output directory of `option` (just before the one file is written, so a failed run leaves nothing).
void out_dir_make(const std::string& dir, const char* option) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw WriteError(std::string(option) + " '" + dir + "': cannot create the directory: " + ec.message());
}

/// The panel of a data directory given as `option`; a file given where the directory belongs is named as such.
MarketPanel panel_of_dir(const std::string& dir, const char* option) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(dir, ec))
    throw std::runtime_error(std::string(option) + " '" + dir + "' is a file; expected the data directory that holds panel.qtp");
  return panel_load(panel_path(dir));
}

/// Test seam: QTOS_TEST_STOP_AFTER_FILES=N[:SIGTERM] makes an import send itself SIGINT (or SIGTERM) once N files are
/// read, through the real signal handler. Returns {N, signal}; N = 0 when unset.
std::pair<std::size_t, int> test_stop_after_files() {
  const char* env = std::getenv("QTOS_TEST_STOP_AFTER_FILES");
  if (!env || !*env) return {0, SIGINT};
  const std::string v(env);
  return {static_cast<std::size_t>(std::strtoull(v.c_str(), nullptr, 10)), v.ends_with(":SIGTERM") ? SIGTERM : SIGINT};
}

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
  std::printf("market    : %s\n", info.shape.text.c_str());
  std::printf("per year  : %s\n", info.shape.annualisation().c_str());
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
  o["market"] = {{"shape", info.shape.text},
                 {"continuous", info.shape.continuous},
                 {"trading_days", info.shape.trading_days},
                 {"bars_per_day", info.shape.bars_per_day},
                 {"bars_per_week", info.shape.bars_per_week},
                 {"coverage", info.shape.coverage},
                 {"bars_per_year", info.shape.bars_per_year},
                 {"bars_per_year_source", info.shape.measured ? "measured" : "calendar"}};
  boost::json::array arr;
  for (const auto& s : info.symbols)
    arr.push_back({{"symbol", s.symbol}, {"bars", s.bars}, {"first", s.bars ? time_format_iso(s.first_ms) : ""},
                   {"last", s.bars ? time_format_iso(s.last_ms) : ""}, {"gap_bars", s.gap_bars}, {"gap_runs", s.gap_runs},
                   {"longest_gap", s.longest_gap}, {"last_close", s.last_close}, {"avg_quote_volume", s.avg_quote_volume}});
  o["per_symbol"] = std::move(arr);
  return o;
}

}  // namespace

void verbs_data_register(CLI::App& app, CliContext& ctx) {
  auto* data = app.add_subcommand("data", "make, import and inspect market data (native panel files)");
  data->require_subcommand(1);

  auto sa = std::make_shared<SynthArgs>();
  auto* synth = data->add_subcommand("synth", "generate a synthetic multi-symbol market with regimes (deterministic per seed)");
  synth->add_option("--symbols", sa->symbols, "number of symbols")->capture_default_str();
  synth->add_option("--bars", sa->bars, "bars per symbol")->capture_default_str();
  synth->add_option("--interval", sa->interval, "bar interval (1m, 5m, 15m, 1h, 4h, 1d, ...)")->capture_default_str();
  synth->add_option("--seed", sa->seed, "random seed")->capture_default_str()->check(unsigned_integer());
  synth->add_option("--start", sa->start, "open time of the first bar (YYYY-MM-DD[THH:MM:SSZ])")->capture_default_str();
  synth->add_option("--out", sa->out, "output directory (writes DIR/panel.qtp)")->required();
  synth->add_option("--planted-momentum", sa->planted_momentum,
                    "plant a tradeable momentum edge of this strength (x bar volatility; 0 = none, 0.15 = clear)")
      ->capture_default_str();
  synth->add_option("--planted-reversion", sa->planted_reversion,
                    "plant a tradeable mean-reversion edge of this strength (x bar volatility; not with --planted-momentum)")
      ->capture_default_str();
  synth->add_option("--planted-flip", sa->planted_flip,
                    "with --planted-momentum: the edge flips sign (to calmer mean reversion) in regimes of about this many bars")
      ->capture_default_str();
  synth->add_flag("--random-walk", sa->random_walk, "a pure random walk: no regime drift or mean reversion (nothing to find)");
  synth->callback([sa] {
    SynthOptions opt;
    path_option_check(sa->out, "--out");
    try {
      opt.n_symbols = sa->symbols;
      opt.n_bars = sa->bars;
      opt.interval_ms = interval_parse_ms(sa->interval, "--interval");
      opt.seed = sa->seed;
      opt.t0_ms = time_parse(sa->start, "--start");
      opt.planted_momentum = sa->planted_momentum;
      opt.planted_reversion = sa->planted_reversion;
      opt.planted_flip_bars = sa->planted_flip;
      opt.random_walk = sa->random_walk;
      synth_options_check(opt);
    } catch (const std::invalid_argument& e) {
      usage_error(e.what());
    }
    out_dir_check(sa->out, "--out");
    Progress progress("synth", static_cast<std::uint64_t>(std::max(opt.n_symbols, 0)));
    auto market = synth_generate(opt, [&](std::int32_t done) { progress.update(static_cast<std::uint64_t>(done)); });
    progress.finish();
    out_dir_make(sa->out, "--out");
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
  imp->callback([ia, &ctx] {
    path_option_check(ia->from, "--from");
    path_option_check(ia->out, "--out");
    ImportOptions opt;
    opt.on_bad_row = ia->on_bad_row == "fail" ? BadRowPolicy::fail : BadRowPolicy::skip;
    // Ctrl-C or SIGTERM stops at the next file; nothing is written then (the panel would be partial).
    stop_signals_install();
    opt.stop = process_stop_token();
    out_dir_check(ia->out, "--out");
    const std::string out_path = panel_path(ia->out);
    const auto stop_hook = test_stop_after_files();
    ImportReport rep;
    Progress progress("import", 0);
    auto panel = kline_import(ia->from, opt, rep, [&](std::size_t done, std::size_t total) {
      progress.set_total(total);
      progress.update(done);
      if (stop_hook.first > 0 && done == stop_hook.first) std::raise(stop_hook.second);
    });
    auto stopped = [&](const char* when) {
      const int sig = opt.stop.signal();
      std::fflush(stderr);
      std::printf("import stopped by %s %s: read %zu of %zu files (%zu rows); nothing was written, '%s' is unchanged\n",
                  sig == SIGTERM ? "SIGTERM" : (sig == SIGINT ? "SIGINT" : "a stop request"), when, rep.files_read, rep.files,
                  rep.rows_read, out_path.c_str());
      std::fflush(stdout);
      ctx.exit_code = stop_exit_code(sig);
    };
    if (!panel) return stopped("between files");
    progress.finish();
    if (opt.stop.stop_requested()) return stopped("before writing the panel");
    out_dir_make(ia->out, "--out");
    panel_save(*panel, out_path);
    std::printf("imported %zu files, %zu rows read, %zu kept -> %s (%d symbols x %d bars of %s)\n", rep.files, rep.rows_read,
                rep.rows_kept, out_path.c_str(), panel->n_symbols(), panel->n_bars(), interval_name(panel->interval_ms()).c_str());
    std::printf("bad rows skipped: %zu", rep.bad_rows());
    bool first_rule = true;
    for (const auto& [rule, n] : rep.bad_rows_by_rule) {
      if (rule == "empty_file" || rule == "unreadable_file") continue;
      std::printf("%s%s=%zu", first_rule ? " (" : ", ", rule.c_str(), n);
      first_rule = false;
    }
    std::printf("%s\n", first_rule ? "" : ")");
    std::printf("empty or unreadable files skipped: %zu\n", rep.bad_files);
    std::printf("duplicates: %zu identical dropped, %zu conflicting (first kept); out-of-order rows sorted: %zu\n",
                rep.duplicates_identical, rep.duplicates_conflicting, rep.out_of_order);
    std::printf("gaps: %zu missing bars in %zu gaps\n", rep.gap_bars, rep.gaps.size());
    for (std::size_t i = 0; i < rep.gaps.size() && i < 10; ++i)
      std::printf("  gap %s from %s, %lld bar(s)\n", rep.gaps[i].symbol.c_str(), time_format_iso(rep.gaps[i].from_ms).c_str(),
                  static_cast<long long>(rep.gaps[i].bars));
    if (rep.gaps.size() > 10) std::printf("  ... %zu more gaps (qtos data info %s --symbols)\n", rep.gaps.size() - 10, ia->out.c_str());
    for (const auto& m : rep.messages) std::printf("  %s\n", m.c_str());
    if (opt.stop.stop_requested()) {
      // The stop came while the panel was being written: the write completed, so say so and exit as stopped.
      std::printf("stopped by a signal after the panel was written in full\n");
      std::fflush(stdout);
      ctx.exit_code = stop_exit_code(opt.stop.signal());
    }
  });

  auto ea = std::make_shared<std::pair<std::string, std::string>>();
  auto header = std::make_shared<bool>(false);
  auto* exp = data->add_subcommand("export", "write a panel as Binance-layout kline CSV files (one per symbol and month)");
  exp->add_option("--data", ea->first, "directory holding panel.qtp")->required();
  exp->add_option("--out", ea->second, "output directory for the .csv files")->required();
  exp->add_flag("--header", *header, "write a header line");
  exp->callback([ea, header] {
    path_option_check(ea->first, "--data");
    path_option_check(ea->second, "--out");
    const auto panel = panel_of_dir(ea->first, "--data");
    const auto files = kline_export(panel, ea->second, ExportOptions{*header, false});
    std::printf("wrote %zu files to %s\n", files, ea->second.c_str());
  });

  auto fa = std::make_shared<InfoArgs>();
  auto* info = data->add_subcommand("info", "print symbols, bar counts, time range and gaps of a data directory");
  info->add_option("dir", fa->dir, "directory holding panel.qtp")->required();
  info->add_option("--format", fa->format, "table or json")->check(CLI::IsMember({"table", "json"}))->capture_default_str();
  info->add_flag("--symbols", fa->per_symbol, "one line per symbol");
  info->callback([fa] {
    path_option_check(fa->dir, "dir");
    const auto panel = panel_of_dir(fa->dir, "dir");
    const auto pi = panel_info(panel);
    if (fa->format == "json")
      std::cout << boost::json::serialize(info_json(pi)) << "\n";
    else
      print_info(pi, fa->per_symbol);
  });
}

}  // namespace qtos::api
