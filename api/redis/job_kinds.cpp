#include "api/redis/job_kinds.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

#include <boost/json.hpp>

#include "api/strategy_cli_util.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/registry/backends.hpp"
#include "cpu/strategy/genome_text.hpp"
#include "models/features.hpp"
#include "models/model.hpp"
#include "models/registry.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/ranking/panel_ranking.hpp"

namespace qtos::redis {
namespace json = boost::json;

std::string exact_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

double exact_double_parse(const std::string& text, const std::string& what) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) throw std::invalid_argument(what + " '" + text + "': expected a number");
  return v;
}

json::array metrics_encode(const BacktestMetrics& m) {
  json::array a;
  for (double v : {m.total_return, m.sharpe, m.sortino, m.max_drawdown, m.win_rate, m.trades, m.profit_factor, m.avg_trade,
                   m.exposure, m.observations, m.sr_bar, m.skew, m.kurtosis})
    a.emplace_back(exact_double(v));
  return a;
}

BacktestMetrics metrics_decode(const json::value& v) {
  if (!v.is_array() || v.as_array().size() != 13) throw std::invalid_argument("metrics: expected an array of 13 numbers");
  double x[13];
  for (std::size_t i = 0; i < 13; ++i) {
    const auto& e = v.as_array()[i];
    if (!e.is_string()) throw std::invalid_argument("metrics: entry " + std::to_string(i) + " is not a hex-float string");
    x[i] = exact_double_parse(std::string(e.as_string()), "metrics entry " + std::to_string(i));
  }
  BacktestMetrics m;
  m.total_return = x[0];
  m.sharpe = x[1];
  m.sortino = x[2];
  m.max_drawdown = x[3];
  m.win_rate = x[4];
  m.trades = x[5];
  m.profit_factor = x[6];
  m.avg_trade = x[7];
  m.exposure = x[8];
  m.observations = x[9];
  m.sr_bar = x[10];
  m.skew = x[11];
  m.kurtosis = x[12];
  return m;
}

namespace {

json::object payload_object(const Job& job) {
  std::error_code ec;
  json::value v = json::parse(job.payload, ec);
  if (ec || !v.is_object()) throw std::invalid_argument("job " + job.key + " (" + job.kind + "): the payload is not a JSON object");
  return std::move(v.as_object());
}

std::string str_field(const json::object& o, const char* k, const Job& job, bool required = true) {
  if (!o.contains(k)) {
    if (required) throw std::invalid_argument("job " + job.key + " (" + job.kind + "): the payload has no '" + k + "'");
    return "";
  }
  if (!o.at(k).is_string()) throw std::invalid_argument("job " + job.key + " (" + job.kind + "): '" + k + "' is not a string");
  return std::string(o.at(k).as_string());
}

std::int64_t int_field(const json::object& o, const char* k, std::int64_t fallback, const Job& job) {
  if (!o.contains(k)) return fallback;
  if (!o.at(k).is_int64() && !o.at(k).is_uint64())
    throw std::invalid_argument("job " + job.key + " (" + job.kind + "): '" + k + "' is not an integer");
  return o.at(k).to_number<std::int64_t>();
}

/// A loaded panel with its strategy features, kept while the file is unchanged.
struct LoadedPanel {
  std::string stamp;
  std::unique_ptr<MarketPanel> panel;
  std::unique_ptr<StrategyFeatures> features;  // computed on first use by evolve-generation
};

/// Per-worker cache of panels by (data directory, symbols).
class PanelCache {
 public:
  LoadedPanel& get(const std::string& data, const std::string& symbols, bool with_features) {
    const std::string path = panel_path(data);
    struct stat st{};
    if (::stat(path.c_str(), &st) != 0) throw std::invalid_argument("data '" + data + "': no panel file " + path + " on this worker");
    const std::string stamp = std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    std::lock_guard<std::mutex> lock(mutex_);
    LoadedPanel& lp = cache_[data + "\n" + symbols];
    if (lp.stamp != stamp || !lp.panel) {
      const MarketPanel full = panel_load(path);
      lp.panel = std::make_unique<MarketPanel>(api::panel_select(full, symbols, data));
      lp.features.reset();
      lp.stamp = stamp;
    }
    if (with_features && !lp.features)
      lp.features = std::make_unique<StrategyFeatures>(strategy_features_compute(lp.panel->view()));
    return lp;
  }

 private:
  std::mutex mutex_;
  std::map<std::string, LoadedPanel> cache_;
};

Result<std::string> run_rank(const Job& job, PanelCache& cache, DeviceKind device) {
  const json::object o = payload_object(job);
  const std::string data = str_field(o, "data", job);
  auto backends = indicator_backends();
  const IndicatorBackend& backend = backend_select(backends, device);
  const LoadedPanel& lp = cache.get(data, str_field(o, "symbols", job, false), false);
  const MarketPanel& panel = *lp.panel;
  if (panel.n_symbols() == 0 || panel.n_bars() == 0) return Error{ErrorCode::not_enough_data, "data '" + data + "' is empty"};
  RankRequest req;
  req.bar = static_cast<std::int32_t>(int_field(o, "bar", panel.n_bars() - 1, job));
  if (req.bar < 0 || req.bar >= panel.n_bars())
    return Error{ErrorCode::invalid, "job " + job.key + ": bar " + std::to_string(req.bar) + " is outside the panel's " +
                                         std::to_string(panel.n_bars()) + " bars"};
  const std::int64_t top = int_field(o, "top", 20, job);
  const Ranking r = panel_rank(panel, req, backend);
  json::array rows;
  for (const auto& s : r.top(static_cast<std::size_t>(std::max<std::int64_t>(top, 1))))
    rows.push_back(json::object{{"rank", s.rank}, {"symbol", s.symbol}, {"score", exact_double(s.score)}});
  return json::serialize(json::object{{"bar", r.bar}, {"ranked", r.eligible}, {"device", std::string(backend.name())}, {"top", std::move(rows)}});
}

Result<std::string> run_evolve_generation(const Job& job, PanelCache& cache, DeviceKind device) {
  const json::object o = payload_object(job);
  const std::string data = str_field(o, "data", job);
  LoadedPanel& lp = cache.get(data, str_field(o, "symbols", job, false), true);
  auto backends = backtest_backends();
  const BacktestBackend& backend = backend_select(backends, device);
  std::vector<kernels::Genome> genomes;
  if (!o.contains("genomes") || !o.at("genomes").is_array())
    throw std::invalid_argument("job " + job.key + ": the payload has no 'genomes' array");
  const json::array& codes = o.at("genomes").as_array();
  const json::array* hashes = o.contains("hashes") && o.at("hashes").is_array() ? &o.at("hashes").as_array() : nullptr;
  for (std::size_t i = 0; i < codes.size(); ++i) {
    if (!codes[i].is_string()) throw std::invalid_argument("job " + job.key + ": genome " + std::to_string(i) + " is not a string");
    genomes.push_back(genome_decode(std::string(codes[i].as_string()), "job " + job.key + " genome " + std::to_string(i)));
    // The coordinator keeps its own genomes: a code that decodes to another genome would give it wrong metrics.
    if (hashes && (i >= hashes->size() || genome_id(genomes.back()) != hashes->at(i).as_string()))
      return Error{ErrorCode::invalid, "job " + job.key + ": genome " + std::to_string(i) + " decodes to another genome"};
  }
  if (!o.contains("costs") || !o.at("costs").is_array() || o.at("costs").as_array().size() != 5)
    throw std::invalid_argument("job " + job.key + ": 'costs' must be an array of 5 hex floats");
  const json::array& c = o.at("costs").as_array();
  auto cd = [&](std::size_t i) {
    if (!c[i].is_string()) throw std::invalid_argument("job " + job.key + ": cost " + std::to_string(i) + " is not a string");
    return exact_double_parse(std::string(c[i].as_string()), "job " + job.key + " cost " + std::to_string(i));
  };
  BacktestRequest train;
  train.panel = lp.panel->view();
  train.features = lp.features.get();
  train.costs = kernels::BacktestCosts{cd(0), cd(1), cd(2), cd(3), cd(4)};
  train.t_begin = static_cast<std::int32_t>(int_field(o, "t_begin", 0, job));
  train.t_end = static_cast<std::int32_t>(int_field(o, "t_end", -1, job));
  train.genomes = genomes;
  train.per_symbol = o.contains("per_symbol") && o.at("per_symbol").is_bool() && o.at("per_symbol").as_bool();
  // The coordinator's features follow its gap policy; this worker's must be the same or the metrics would differ.
  if (o.contains("gaps") && o.at("gaps").is_string() && o.at("gaps").as_string() != gap_policy_text(lp.features->gaps))
    return Error{ErrorCode::invalid, "job " + job.key + ": the coordinator computes features under gaps " + std::string(o.at("gaps").as_string()) +
                                         ", this worker under " + gap_policy_text(lp.features->gaps)};
  const std::vector<TrainMetrics> metrics = evolve_train_metrics(backend, train);
  json::array out, per_symbol;
  for (const auto& m : metrics) {
    out.push_back(metrics_encode(m.pooled));
    json::array sharpe;
    for (double v : m.symbol_sharpe) sharpe.emplace_back(exact_double(v));
    per_symbol.push_back(std::move(sharpe));
  }
  return json::serialize(json::object{{"metrics", std::move(out)}, {"symbol_sharpe", std::move(per_symbol)}, {"device", std::string(backend.name())}});
}

Result<std::string> run_retrain(const Job& job, DeviceKind device) {
  const json::object o = payload_object(job);
  const std::string data = str_field(o, "data", job);
  const std::string model_name = str_field(o, "model", job);
  const std::string registry_dir = str_field(o, "registry", job);
  const std::string name = o.contains("name") ? str_field(o, "name", job) : model_name;
  const auto kind = models::model_kind_parse(model_name, "job " + job.key + " model");
  if (!models::model_name_valid(name)) return Error{ErrorCode::invalid, "job " + job.key + ": model name '" + name + "' is not valid"};
  models::ModelRegistry registry(registry_dir);
  const MarketPanel panel = panel_load(panel_path(data));
  // The same steps as `qtos retrain` (api/verb_retrain.cpp), with the job's settings.
  models::FeatureSpec spec;
  spec.horizon = static_cast<std::int32_t>(int_field(o, "horizon", 4, job));
  spec.window = static_cast<std::int32_t>(int_field(o, "window", 16, job));
  models::ModelHyper hyper;
  hyper.hidden = static_cast<std::int32_t>(int_field(o, "hidden", 32, job));
  hyper.d_model = hyper.hidden;
  hyper.layers = static_cast<std::int32_t>(int_field(o, "layers", 1, job));
  hyper.heads = hyper.hidden % 4 == 0 ? 4 : 1;
  hyper.patch = spec.window % 4 == 0 ? 4 : 1;
  models::TrainOptions opts;
  opts.epochs = static_cast<std::int32_t>(int_field(o, "epochs", 20, job));
  opts.batch_size = static_cast<std::int32_t>(int_field(o, "batch_size", 256, job));
  opts.patience = static_cast<std::int32_t>(int_field(o, "patience", 4, job));
  opts.seed = static_cast<std::uint64_t>(int_field(o, "seed", 42, job));
  if (o.contains("lr")) opts.lr = exact_double_parse(str_field(o, "lr", job), "job " + job.key + " lr");
  opts.device = device;
  opts.t0_ms = panel.t0_ms();
  opts.interval_ms = panel.interval_ms();
  // A replaying node trains on the bars it has replayed so far: `t_end` (optional) is where the targets stop.
  const std::int64_t t_end = int_field(o, "t_end", -1, job);
  if (t_end != -1 && (t_end < 1 || t_end > panel.n_bars()))
    return Error{ErrorCode::invalid, "job " + job.key + ": t_end " + std::to_string(t_end) + " is outside the panel's " +
                                         std::to_string(panel.n_bars()) + " bars"};
  const auto table = models::features_build(panel.view(), spec, 0, static_cast<std::int32_t>(t_end));
  const auto split = models::split_by_time(table);
  auto trained = models::model_train(table, split, kind, hyper, opts);
  if (!trained.ok()) return trained.error();
  const auto& model = *trained.value();
  const auto rec = registry.register_candidate(name, model);
  const auto& m = model.meta();
  return json::serialize(json::object{{"name", rec.name},
                                      {"version", rec.version},
                                      {"dir", rec.dir},
                                      {"device", m.device},
                                      {"best_epoch", m.best_epoch},
                                      {"epochs_run", m.epochs_run},
                                      {"val_accuracy", exact_double(m.val.directional_accuracy)},
                                      {"test_accuracy", exact_double(m.test.directional_accuracy)}});
}

}  // namespace

void job_kinds_register(Worker& worker, DeviceKind device) {
  auto cache = std::make_shared<PanelCache>();
  worker.handle(std::string(kJobRank), [cache, device](const Job& j) { return run_rank(j, *cache, device); });
  worker.handle(std::string(kJobEvolveGeneration), [cache, device](const Job& j) { return run_evolve_generation(j, *cache, device); });
  worker.handle(std::string(kJobRetrain), [device](const Job& j) { return run_retrain(j, device); });
}

PopulationEvaluator redis_population_evaluator(std::shared_ptr<JobClient> client, DistributedEvolveOptions options) {
  if (!client) throw std::invalid_argument("redis_population_evaluator: the job client is null");
  if (options.run_id.empty()) throw std::invalid_argument("redis_population_evaluator: the run id is empty");
  if (options.chunks < 1) throw std::invalid_argument("redis_population_evaluator: chunks must be >= 1");
  auto calls = std::make_shared<std::uint64_t>(0);
  return [client, options, calls](const BacktestRequest& train) -> std::vector<TrainMetrics> {
    const std::uint64_t call = (*calls)++;
    const std::size_t n = train.genomes.size();
    if (n == 0) return {};
    const std::size_t chunks = std::min(options.chunks, n);
    const auto& c = train.costs;
    const json::array costs{json::value(exact_double(c.fee)), json::value(exact_double(c.slippage)),
                            json::value(exact_double(c.slippage_spread)), json::value(exact_double(c.capital)),
                            json::value(exact_double(c.bars_per_year))};
    std::vector<std::string> keys;
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    for (std::size_t k = 0; k < chunks; ++k) {
      const std::size_t lo = n * k / chunks, hi = n * (k + 1) / chunks;
      json::array codes, hashes;
      for (std::size_t i = lo; i < hi; ++i) {
        codes.emplace_back(genome_encode(train.genomes[i]));
        hashes.emplace_back(genome_id(train.genomes[i]));
      }
      const json::object payload{{"data", options.data},   {"symbols", options.symbols}, {"t_begin", train.t_begin},
                                 {"t_end", train.t_end},   {"costs", costs},             {"genomes", std::move(codes)},
                                 {"hashes", std::move(hashes)}, {"per_symbol", train.per_symbol},
                                 {"gaps", train.features != nullptr ? gap_policy_text(train.features->gaps) : std::string("skip")}};
      std::string key = options.run_id + ":" + std::to_string(call) + ":" + std::to_string(k);
      auto q = client->enqueue(key, std::string(kJobEvolveGeneration), json::serialize(payload));
      if (!q.ok()) throw std::runtime_error("evolve --workers: cannot enqueue job " + key + ": " + q.error().message);
      keys.push_back(std::move(key));
      ranges.emplace_back(lo, hi);
    }
    auto outcomes = client->wait(keys, options.timeout);
    if (!outcomes.ok()) throw std::runtime_error("evolve --workers: " + outcomes.error().message);
    std::vector<TrainMetrics> out(n);
    for (std::size_t k = 0; k < keys.size(); ++k) {
      const JobOutcome& jo = outcomes.value()[k];
      if (!jo.ok) throw std::runtime_error("evolve --workers: job " + jo.key + " was dead-lettered: " + jo.error);
      std::error_code ec;
      const json::value v = json::parse(jo.result, ec);
      if (ec || !v.is_object() || !v.as_object().contains("metrics") || !v.as_object().at("metrics").is_array())
        throw std::runtime_error("evolve --workers: job " + jo.key + " has a malformed result");
      const json::array& ms = v.as_object().at("metrics").as_array();
      const auto [lo, hi] = ranges[k];
      if (ms.size() != hi - lo)
        throw std::runtime_error("evolve --workers: job " + jo.key + " returned " + std::to_string(ms.size()) + " metrics for " +
                                 std::to_string(hi - lo) + " genomes");
      const json::value* ss = v.as_object().if_contains("symbol_sharpe");
      for (std::size_t i = lo; i < hi; ++i) {
        out[i].pooled = metrics_decode(ms[i - lo]);
        if (train.per_symbol) {
          if (ss == nullptr || !ss->is_array() || ss->as_array().size() != hi - lo || !ss->as_array()[i - lo].is_array())
            throw std::runtime_error("evolve --workers: job " + jo.key + " has no per-symbol Sharpe ratios (a worker of another version?)");
          for (const json::value& x : ss->as_array()[i - lo].as_array()) {
            if (!x.is_string()) throw std::runtime_error("evolve --workers: job " + jo.key + " has a malformed per-symbol Sharpe ratio");
            out[i].symbol_sharpe.push_back(exact_double_parse(std::string(x.as_string()), "job " + jo.key + " per-symbol Sharpe"));
          }
        }
      }
    }
    return out;
  };
}

PopulationEvaluator evolve_workers_evaluator(const std::string& url, const std::string& data, const std::string& symbols) {
  const RedisUrl u = redis_url_parse(url, "--workers");
  const std::string data_dir = std::filesystem::absolute(data).string();  // workers resolve it, not this cwd
  JobQueueOptions o;
  const JobKeys keys = JobKeys::of(o.ns);
  RedisClient probe(u, o.redis);
  auto list = heartbeats_list(probe, keys, o.heartbeat_every);
  if (!list.ok()) throw std::runtime_error("--workers " + u.text() + ": " + list.error().message);
  std::size_t alive = 0;
  for (const auto& hb : list.value()) alive += hb.alive && hb.role == "worker";
  if (alive == 0)
    throw std::runtime_error("--workers " + u.text() + ": no live worker (start some with `qtos worker --redis " + u.text() +
                             "`; `qtos workers` lists them)");
  // The run id keeps this run's job keys apart from every other run's: host, process and start time.
  const std::string run_id = "evolve-" + host_name() + "-" + std::to_string(::getpid()) + "-" + std::to_string(redis_now_ms());
  std::printf("distributing each generation over %zu live workers on %s (jobs %s:*)\n", alive, u.text().c_str(), run_id.c_str());
  auto client = std::make_shared<JobClient>(u, o, run_id);
  return redis_population_evaluator(client, DistributedEvolveOptions{.run_id = run_id, .data = data_dir, .symbols = symbols, .chunks = alive});
}

}  // namespace qtos::redis
