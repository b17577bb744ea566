#pragma once
/// @file The job kinds a `qtos worker` runs (docs/SCALE_OUT.md): rank, evolve-generation and retrain, and the
/// evolve coordinator's side of evolve-generation (a PopulationEvaluator that splits a generation over workers).
/// Workers read the data directory named in the job, so every worker must see the same path (a shared volume).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "api/redis/redis_jobs.hpp"
#include "cpu/backend/device.hpp"
#include "runtime/strategy/evolution.hpp"

namespace qtos::redis {

inline constexpr std::string_view kJobRank = "rank";                          ///< rank a panel's symbols
inline constexpr std::string_view kJobEvolveGeneration = "evolve-generation";  ///< train metrics of some genomes
inline constexpr std::string_view kJobRetrain = "retrain";                    ///< train and register a model

/// Registers the rank, evolve-generation and retrain handlers on `worker`, running on `device`. Panels and their
/// strategy features are cached per (data directory, symbols, file size and time) while the worker lives.
void job_kinds_register(Worker& worker, DeviceKind device);

/// A double as text that parses back to the same bits (hex float; "nan", "inf").
std::string exact_double(double v);
/// Parses exact_double's text; throws std::invalid_argument naming `what`.
double exact_double_parse(const std::string& text, const std::string& what);
/// BacktestMetrics as a JSON array of exact_double texts, and back.
boost::json::array metrics_encode(const BacktestMetrics& m);
/// Parses metrics_encode's array; throws std::invalid_argument on a malformed one.
BacktestMetrics metrics_decode(const boost::json::value& v);

/// What the evolve coordinator needs to split a generation.
struct DistributedEvolveOptions {
  std::string run_id;                  ///< unique per run: job keys are "<run_id>:<call>:<chunk>"
  std::string data;                    ///< data directory the workers load
  std::string symbols;                 ///< --symbols ("" for all)
  std::size_t chunks = 3;              ///< jobs per generation (typically the number of workers)
  std::chrono::milliseconds timeout{600'000};  ///< one generation's wait for its results
};

/// A PopulationEvaluator that enqueues a generation's fresh genomes as `chunks` evolve-generation jobs and waits
/// for them; the metrics come back exactly (hex floats), so the search is the same as in one process. Throws
/// std::runtime_error naming the job when one is dead-lettered or the wait times out.
PopulationEvaluator redis_population_evaluator(std::shared_ptr<JobClient> client, DistributedEvolveOptions options);

/// `qtos evolve --workers URL`: an evaluator on the workers of `url` (namespace "qtos") for the panel in `data`
/// restricted to `symbols`, one job per live worker per generation. Throws std::invalid_argument naming --workers
/// for a bad URL and std::runtime_error when Redis cannot be reached or no worker has sent a heartbeat. Prints the
/// worker count.
PopulationEvaluator evolve_workers_evaluator(const std::string& url, const std::string& data, const std::string& symbols);

}  // namespace qtos::redis
