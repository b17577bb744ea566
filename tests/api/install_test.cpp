// `cmake --install` of this build into a temporary prefix: the layout README "Deployment (GPU server)" describes,
// a binary that runs from there (with its LibTorch module), a systemd unit pointing at it, and an example .env that
// names every variable.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "runtime/config/config.hpp"
#include "tests/support/run_command.hpp"

namespace qtos {
namespace install_test {

namespace fs = std::filesystem;

// The build tree this test binary belongs to: QTOS_BIN is <build>/bin/qtos.
fs::path build_dir() { return fs::path(QTOS_BIN).parent_path().parent_path(); }

// 'path', single-quoted for the shell.
std::string q(const fs::path& p) {
  std::string s(1, '\'');
  s += p.string();
  s += '\'';
  return s;
}

int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Install, CmakeInstallLaysOutBinaryUnitExampleEnvAndDocs) {
  if (shell("command -v cmake >/dev/null 2>&1") != 0) GTEST_SKIP() << "cmake is not on PATH";
  const fs::path prefix = fs::temp_directory_path() / std::string("qtos_install_").append(std::to_string(::getpid()));
  fs::remove_all(prefix);
  const fs::path log = prefix.string() + ".log";
  ASSERT_EQ(shell(std::string("cmake --install ") + q(build_dir()) + " --prefix " + q(prefix) + " >" + q(log) + " 2>&1"), 0)
      << test::slurp(log);
  EXPECT_TRUE(fs::exists(prefix / "bin/qtos"));
  EXPECT_TRUE(fs::exists(prefix / "share/qtos/qtos.env.example"));
  EXPECT_TRUE(fs::exists(prefix / "share/doc/qtos/README.md"));
  EXPECT_TRUE(fs::exists(prefix / "share/doc/qtos/CONFIG.md"));
  EXPECT_EQ(fs::exists(prefix / "share/qtos/assets"), fs::exists(fs::path(QTOS_SOURCE_DIR) / "api/http/assets"));
  const std::string unit = test::slurp(prefix / "lib/systemd/system/qtos.service");
  const std::string exec = std::string("ExecStart=").append((prefix / "bin/qtos").string()).append(" serve --state-dir /var/lib/qtos");
  EXPECT_NE(unit.find(exec), std::string::npos) << unit;
  for (const char* key : {"Restart=on-failure", "KillSignal=SIGTERM", "StateDirectory=qtos", "LogsDirectory=qtos",
                          "EnvironmentFile=-/etc/qtos/qtos.env", "User=qtos", "NoNewPrivileges=true", "ProtectSystem=strict"})
    EXPECT_NE(unit.find(key), std::string::npos) << key;
  EXPECT_EQ(unit.find("\nPrivateDevices="), std::string::npos) << "the GPU needs /dev/nvidia*";
  if (shell("command -v systemd-analyze >/dev/null 2>&1") == 0) {
    const std::string unit_path = (prefix / "lib/systemd/system/qtos.service").string();
    EXPECT_EQ(shell(std::string("systemd-analyze verify ") + q(unit_path) + " >" + q(log) + " 2>&1"), 0)
        << test::slurp(log);
  }
  // The installed binary runs from its new place, with the LibTorch module installed beside it.
  EXPECT_TRUE(fs::exists(prefix / "lib/qtos/libqtos_torch.so"));
  EXPECT_EQ(shell(q(prefix / "bin/qtos") + " version >" + q(log) + " 2>&1"), 0) << test::slurp(log);
  EXPECT_NE(test::slurp(log).find("qtos 0."), std::string::npos) << test::slurp(log);
  EXPECT_NE(test::slurp(log).find((prefix / "lib/qtos/libqtos_torch.so").string() + ")"), std::string::npos)
      << "the installed module, not the build's\n" << test::slurp(log);
  fs::remove_all(prefix);
  fs::remove(log);
}

TEST(Install, ExampleEnvNamesEveryVariableWithItsDefaultAndLoads) {
  // Uncomment every `#QT_...=` line: the result must load and change nothing but QT_STATE_DIR.
  std::ifstream in(fs::path(QTOS_SOURCE_DIR) / "deploy/qtos.env.example");
  ASSERT_TRUE(in);
  const fs::path copy = fs::temp_directory_path() / std::string("qtos_env_").append(std::to_string(::getpid()));
  std::ofstream out(copy);
  std::set<std::string> named;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("#QT_")) line.erase(0, 1);
    if (!line.starts_with("QT_")) continue;
    const std::string name = line.substr(0, line.find('='));
    EXPECT_TRUE(named.insert(name).second) << name << " appears twice";
    // Left out of the load: a variable whose default is empty, and the webhook URL, whose example value is a template
    // (`<id>/<token>`) showing the shape, not a default.
    if (line.ends_with("=") || name == "QT_NOTIFY_WEBHOOK_URL") continue;
    out << line << "\n";
  }
  out.close();
  std::set<std::string> known;
  for (const auto& n : config_known_names()) known.insert(n);
  for (const auto& n : known) EXPECT_TRUE(named.count(n)) << n << " is missing from deploy/qtos.env.example";
  for (const auto& n : named) EXPECT_TRUE(known.count(n)) << n << " in deploy/qtos.env.example is not a qtos setting";
  ConfigSources src;
  src.env_file = env_file_read(copy.string());
  src.env_file_path = copy.string();
  const Config loaded = config_load(src);
  const Config defaults = config_load(ConfigSources{});
  for (const auto& [name, entry] : defaults.entries) {
    if (name == "QT_STATE_DIR") continue;
    EXPECT_EQ(loaded.entries.at(name).value, entry.value) << name << ": the example's value is not the default";
  }
  EXPECT_EQ(loaded.state_dir, "/var/lib/qtos");
  fs::remove(copy);
}

}  // namespace install_test
}  // namespace qtos
