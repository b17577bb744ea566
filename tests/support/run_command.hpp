#pragma once
// Runs a command line in a clean environment and captures its exit code, stdout and stderr (for CLI tests).

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace qtos::test {

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
};

/// True when `text` contains `what` (a command's output holds a message).
inline bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Runs `args` (already shell-quoted) with QTOS_BIN in `cwd`, with only PATH, HOME and `env` set.
inline CommandResult run_qtos(const std::string& args, const std::filesystem::path& cwd,
                              const std::map<std::string, std::string>& env = {}) {
  const auto out = cwd / ".cmd_out", err = cwd / ".cmd_err";
  std::string cmd = "cd '" + cwd.string() + "' && env -i PATH=\"$PATH\" HOME=\"$HOME\"";
  // Sanitizer settings (suppressions, halt_on_error) must reach the child under the asan/tsan presets.
  for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"})
    if (const char* v = std::getenv(var)) cmd += std::string(" ") + var + "='" + v + "'";
  for (const auto& [k, v] : env) cmd += " " + k + "='" + v + "'";
  cmd += " '" + std::string(QTOS_BIN) + "' " + args + " >'" + out.string() + "' 2>'" + err.string() + "'";
  const int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

/// A fresh temporary directory removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qtos-test-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }
  /// A path inside the directory, as text.
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace qtos::test
