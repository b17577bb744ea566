#include "api/cli_checks.hpp"

#include <csignal>

#include "cpu/backend/indicator_backend.hpp"
#include "runtime/util/atomic_file.hpp"

namespace qtos::api {

void output_path_check(const std::string& option, const std::string& path) {
  if (path.empty()) throw UsageError(option + ": expected a file path, got an empty one");
  try {
    // Creating (and, at scope exit, removing) the temporary the final write will use proves the directory exists and
    // takes new files: the check and the write cannot disagree.
    const AtomicFile probe(path);
  } catch (const WriteError& e) {
    throw UsageError(option + " " + path + ": " + e.what() + "; checked before starting, nothing was run");
  }
}

CLI::Option* gaps_option_add(CLI::App* cmd, std::string& text) {
  return cmd->add_option("--gaps", text,
                         "what a missing bar (a closure, a holiday, an outage) does: skip (indicators and positions carry "
                         "over it) or reset-after:N (restart after a gap longer than N bars) (default: QT_GAPS, skip)");
}

kernels::GapPolicy gaps_resolve(const std::string& text, const Config& config) {
  if (text.empty()) return config.gaps;
  try {
    return gap_policy_parse(text, "--gaps");
  } catch (const std::invalid_argument& e) {
    throw UsageError(e.what());
  }
}

const char* stop_signal_name(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return "a stop request";
}

}  // namespace qtos::api
