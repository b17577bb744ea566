#pragma once
/// @file The control plane of `qtos serve`: the HTTP API's ControlPlane over the running OS. Every call that reads or
/// changes bus-owned state runs as a command on the bus owner thread between two bars (CommandQueue) and the HTTP
/// thread waits for it; the event feed of /events is a ring the owner thread fills and any thread reads.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "api/http/control_plane.hpp"
#include "api/redis/scale_out_node.hpp"
#include "api/serve/command_queue.hpp"
#include "runtime/analytics/ledger.hpp"
#include "runtime/bus/event_bus.hpp"
#include "runtime/data/market_panel.hpp"
#include "runtime/exchange/exchange.hpp"
#include "runtime/executor/executor.hpp"
#include "runtime/policy/policy_store.hpp"
#include "runtime/risk/risk_os.hpp"
#include "runtime/services/opportunity_ranker.hpp"
#include "runtime/services/strategy_generator.hpp"
#include "runtime/strategy/strategy_repository.hpp"
#include "runtime/subsystems/subsystem_set.hpp"
#include "runtime/util/stop_token.hpp"

namespace qtos::api {

/// The running OS as the plane reaches it: set on the owner thread when the run starts, cleared when it ends.
struct ServeBinding {
  const Config* config = nullptr;           ///< the configuration (stage, subsystems)
  EventBus* bus = nullptr;                  ///< the bus
  PolicyStore* policy = nullptr;            ///< the policy store (SQLite under the state directory)
  RiskOS* risk = nullptr;                   ///< the brake, the locks
  const Exchange* exchange = nullptr;       ///< balances and positions
  EventDrivenExecutor* executor = nullptr;  ///< forced exits
  SubsystemSet* subsystems = nullptr;       ///< the AI subsystems
  StrategyGeneratorAI* generator = nullptr; ///< promotions and retirements
  const MarketOpportunityRanker* ranker = nullptr;  ///< the last ranking with its sub-scores (null: no ranker)
  const redis::ScaleOutNode* scale_out = nullptr;   ///< the node of a Redis deployment (null: one node, SQLite)
};

/// What the plane needs of a Redis deployment (QT_REDIS_URL, docs/SCALE_OUT.md): the jobs API sends rank, evolve and
/// retrain jobs to `qtos worker` processes while one is alive, and /health/ai lists every heartbeat.
struct ServeRedis {
  redis::RedisUrl url;          ///< the shared Redis
  redis::JobQueueOptions queue; ///< namespace, heartbeat period, connection settings
  std::string node;             ///< this node's name (job keys and the job clients' ids start with it)
  std::string data;             ///< the replayed market's data directory, absolute ("": a market workers cannot load)
};

/// The ring of recent events (id = the bus's event id), filled on the owner thread, read from any thread.
class EventRing {
 public:
  /// Keeps the newest `capacity` events.
  explicit EventRing(std::size_t capacity = 20'000) : capacity_(capacity) {}
  /// Owner thread: records an event.
  void add(const AnyEvent& event);
  /// Events with id > since, oldest first, at most `limit`.
  std::vector<ApiEvent> since(std::uint64_t since, std::size_t limit) const;
  /// Counts by event type name, and denials by reason, since the start (for /metrics).
  std::map<std::string, std::uint64_t> type_counts() const;
  std::map<std::string, std::uint64_t> denial_counts() const;  ///< by DenyReason name

 private:
  mutable std::mutex mutex_;
  std::deque<ApiEvent> events_;
  std::size_t capacity_;
  std::map<std::string, std::uint64_t> types_, denials_;
};

/// A long job started over the API (rank, evolve, retrain): its own thread, its progress, a stop token.
struct ServeJob {
  std::string id;                       ///< "job-1", ...
  JobKind kind = JobKind::rank;         ///< what it does
  std::atomic<int> state{0};            ///< 0 running, 1 done, 2 failed, 3 cancelled
  std::atomic<double> progress{0};      ///< 0..1
  std::string error;                    ///< when failed
  std::string runs_on = "process";      ///< "process" (a thread of this server) or "workers" (the Redis workers); under the jobs lock
  std::string redis_key;                ///< a job queued to the workers: its key ("": a thread here); under the jobs lock
  std::int32_t trained_on_bars = 0;     ///< a retrain queued to the workers: the bars its targets stop at
  boost::json::value result;            ///< when done
  StopSource stop;                      ///< cancel
  std::thread worker;                   ///< joined at shutdown
};

/// The ControlPlane of `qtos serve`.
class ServePlane final : public ControlPlane {
 public:
  /// `commands` is drained by the owner thread; `ledger_path`, `repo_path` are the run's files; `models_dir` is the
  /// model registry's root (GET /models, promotions, retrain jobs); `market` is the data being replayed (jobs read it up
  /// to the current bar); `stage` is the starting integration stage.
  ServePlane(CommandQueue& commands, std::string ledger_path, std::string repo_path, std::string models_dir,
             std::shared_ptr<const MarketPanel> market, IntegrationStage stage);
  ~ServePlane() override;

  /// Owner thread: binds the running OS (at the start of the run) or unbinds it (nullopt, at its end).
  void bind(std::optional<ServeBinding> binding);
  /// Owner thread: the bar the run is at (jobs use the data up to it) and the last ranking seen.
  void bar_set(std::int32_t t) { bar_.store(t); }
  /// Owner thread: a ranking was published.
  void ranking_set(const OpportunitiesUpdated& ranking);
  /// The event ring (the owner thread adds to it).
  EventRing& events() { return events_; }
  /// Starting (false) / serving (true) / stopping (false).
  void ready_set(bool ready) { ready_.store(ready); }
  /// Stops and joins every job (shutdown).
  void jobs_stop();
  /// Before the server starts: this node belongs to a Redis deployment (jobs may run on its workers).
  void redis_set(ServeRedis r);

  bool ready() const override { return ready_.load(); }
  boost::json::value health_ai() override;
  boost::json::value policy() override;
  boost::json::value policy_history(std::uint64_t from_version, std::size_t limit) override;
  boost::json::value opportunities() override;
  boost::json::value strategies() override;
  Result<boost::json::value> strategy(std::string_view id) override;
  boost::json::value models() override;
  boost::json::value positions() override;
  boost::json::value orders(std::size_t limit) override;
  Result<boost::json::value> order(std::string_view id) override;
  boost::json::value trades(std::size_t limit) override;
  boost::json::value analytics_system() override;
  boost::json::value analytics_strategies() override;
  std::vector<ApiEvent> events_since(std::uint64_t since, std::size_t limit) override;
  std::string metrics_text() override;
  boost::json::value locks() override;
  Result<boost::json::value> job(std::string_view id) override;
  Result<boost::json::value> policy_update(const PolicyPatch& patch, std::uint64_t expected_version, const Actor& actor) override;
  Result<boost::json::value> risk_mode_set(RiskMode mode, const Actor& actor) override;
  Result<boost::json::value> emergency_brake_set(bool on, const Actor& actor) override;
  Result<boost::json::value> subsystem_mode_set(Subsystem subsystem, SubsystemMode mode, const Actor& actor) override;
  Result<boost::json::value> stage_set(IntegrationStage stage, const Actor& actor) override;
  Result<boost::json::value> strategy_promote(std::string_view id, const Actor& actor) override;
  Result<boost::json::value> strategy_retire(std::string_view id, const Actor& actor) override;
  Result<boost::json::value> model_promote(std::string_view name, const Actor& actor) override;
  Result<boost::json::value> position_close(std::string_view symbol, const Actor& actor) override;
  Result<boost::json::value> lock_delete(std::string_view id, const Actor& actor) override;
  Result<boost::json::value> job_start(JobKind kind, const boost::json::object& params, const Actor& actor) override;
  Result<boost::json::value> job_cancel(std::string_view id, const Actor& actor) override;

 private:
  /// Runs `fn` on the owner thread against the binding; throws when the OS is not running or does not answer in time.
  template <class F>
  auto on_owner(F fn);
  /// The same for a call that answers with a Result: an OS that is not running or does not answer is "stopped" (503).
  template <class F>
  Result<boost::json::value> on_owner_result(F fn);
  Ledger& ledger();  // owner thread: the run's ledger, read through its own connection
  std::size_t live_workers();  // live `qtos worker` heartbeats (0 without Redis or while it is unreachable)
  Result<boost::json::value> redis_job_state(const ServeJob& job, const std::string& key);  // GET /jobs/{id}: queued to the workers

  CommandQueue& commands_;
  std::string ledger_path_, repo_path_, models_dir_;
  std::shared_ptr<const MarketPanel> market_;
  std::atomic<bool> ready_{false};
  std::atomic<std::int32_t> bar_{0};
  EventRing events_;
  // owner thread only
  std::optional<ServeBinding> binding_;
  IntegrationStage stage_;
  std::unique_ptr<Ledger> ledger_;
  OpportunitiesUpdated ranking_;
  // jobs (any thread)
  std::mutex jobs_mutex_;
  std::map<std::string, std::shared_ptr<ServeJob>> jobs_;
  static constexpr long kMaxRunningJobs = 2;  // jobs running at once (the trading loop keeps the rest of the machine)
  std::uint64_t next_job_ = 0;
  // Redis (set before the server starts, then read-only; the clients are thread-safe)
  std::optional<ServeRedis> redis_;
  std::unique_ptr<redis::JobClient> redis_jobs_;
  std::unique_ptr<redis::RedisClient> redis_reader_;
};

}  // namespace qtos::api
