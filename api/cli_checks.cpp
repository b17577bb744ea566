#include "api/cli_checks.hpp"

#include <csignal>

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

const char* stop_signal_name(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return "a stop request";
}

}  // namespace qtos::api
