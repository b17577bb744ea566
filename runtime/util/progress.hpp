#pragma once
/// @file Progress reporting for long work: a redrawn bar on a terminal, plain log lines otherwise.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qtos {

/// Reports progress of `total` units of work to stderr. Not thread-safe: call from one thread.
class Progress {
 public:
  /// `label` names the work; `total` may be 0 (then only the final line is printed).
  Progress(std::string label, std::uint64_t total, std::FILE* out = stderr);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();
  /// Sets the amount done so far and an optional short status text; redraws at most every 100 ms on a terminal,
  /// logs at most every 10% (and at least every 5 s) otherwise.
  void update(std::uint64_t done, const std::string& status = {});
  /// Marks the work finished and prints the final line.
  void finish(const std::string& status = {});
  /// Marks the work stopped before its end (a stop request) and prints the final line at the amount done so far.
  void stop(const std::string& status);
  /// Changes the total (when it becomes known after the bar was created).
  void set_total(std::uint64_t total) { total_ = total; }
  /// Forces terminal or plain mode (tests); by default it follows isatty().
  void set_terminal(bool is_terminal) { tty_ = is_terminal; }

 private:
  void draw(bool final_line);
  std::string label_;
  std::uint64_t total_ = 0, done_ = 0;
  std::string status_;
  std::FILE* out_;
  bool tty_ = false, finished_ = false;
  int last_decile_ = -1;
  std::uint64_t last_drawn_done_ = UINT64_MAX;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace qtos
