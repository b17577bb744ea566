#pragma once
// A Google Benchmark reporter that prints the usual table and then, for every case "<case>/<impl>", each
// implementation's figures beside the "qtos" one as a ratio, plus targets and physical limits given by the program.

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

namespace qtos::bench {

/// A line of the summary: a case, the counter compared, whether higher is better, and an optional target.
struct Comparison {
  std::string bench_case;  ///< the part of the benchmark name before '/'
  std::string counter;     ///< e.g. "items_per_second" or "p99_us"
  bool higher_is_better = true;
  double target = 0;       ///< 0: none
  std::string unit_note;   ///< how to print (e.g. "M/s" divides by 1e6)
};

/// Console output plus the ratio summary.
class CompareReporter : public benchmark::ConsoleReporter {
 public:
  explicit CompareReporter(std::vector<Comparison> comparisons) : comparisons_(std::move(comparisons)) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      const std::string name = r.benchmark_name();
      const auto slash = name.find('/');
      if (slash == std::string::npos) continue;
      std::string impl = name.substr(slash + 1);
      if (const auto s2 = impl.find('/'); s2 != std::string::npos) impl = impl.substr(0, s2);
      auto& slot = values_[name.substr(0, slash)][impl];
      for (const auto& [k, c] : r.counters) slot[k] = c.value;
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n=== qtos vs naive baseline (same run) ===\n");
    for (const auto& c : comparisons_) {
      auto it = values_.find(c.bench_case);
      if (it == values_.end()) continue;
      const auto& impls = it->second;
      auto q = impls.find("qtos");
      if (q == impls.end() || !q->second.count(c.counter)) continue;
      const double qv = q->second.at(c.counter);
      const double scale = c.unit_note == "M/s" ? 1e6 : 1.0;
      std::printf("%-28s %-18s qtos %12.3f %s", c.bench_case.c_str(), c.counter.c_str(), qv / scale, c.unit_note.c_str());
      if (c.target > 0)
        std::printf("  target %s%g %s: %s", c.higher_is_better ? ">=" : "<=", c.target / scale, c.unit_note.c_str(),
                    (c.higher_is_better ? qv >= c.target : qv <= c.target) ? "MET" : "NOT MET");
      std::printf("\n");
      for (const auto& [impl, counters] : impls) {
        if (impl == "qtos" || !counters.count(c.counter)) continue;
        const double v = counters.at(c.counter);
        if (impl.rfind("qtos", 0) == 0) {  // another qtos configuration: shown, not compared
          std::printf("%-28s %-18s %-4s %12.3f %s  (qtos variant)\n", "", "", impl.c_str(), v / scale, c.unit_note.c_str());
          continue;
        }
        const double ratio = c.higher_is_better ? (v > 0 ? qv / v : 0) : (qv > 0 ? v / qv : 0);
        std::printf("%-28s %-18s %-4s %12.3f %s  -> qtos is %.2fx %s\n", "", "", impl.c_str(), v / scale,
                    c.unit_note.c_str(), ratio, impl == "fsync_limit" ? "of the physical limit" : (impl == "ceiling" ? "of the ceiling (bars on a bus with no subscriber)" : "better"));
      }
    }
  }

 private:
  std::vector<Comparison> comparisons_;
  std::map<std::string, std::map<std::string, std::map<std::string, double>>> values_;
};

}  // namespace qtos::bench
