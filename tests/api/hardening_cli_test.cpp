// The hardening guarantees of the qtos verbs through the real binary: Ctrl-C (SIGINT) and SIGTERM stop long work at a
// safe point and keep what is complete; a failed write leaves the previous file intact; outputs are checked before the
// work; out-of-range counts are usage errors (exit 2) naming the option; unknown QT_* names are reported by every verb;
// list verbs on a mistyped store path create nothing.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace hardening_cli_test {

using test::run_qtos;
using test::slurp;
using test::TempDir;

using test::has;

/// A qtos process started in the background with a clean environment, stdout and stderr going to files in `cwd`.
class Background {
 public:
  Background(const std::vector<std::string>& args, const std::filesystem::path& cwd) : out_(cwd / ".bg_out"), err_(cwd / ".bg_err") {
    std::vector<std::string> env = {std::string("PATH=") + (std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"),
                                    std::string("HOME=") + (std::getenv("HOME") ? std::getenv("HOME") : "/tmp")};
    for (const char* var : {"ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TSAN_OPTIONS"})
      if (const char* v = std::getenv(var)) env.push_back(std::string(var) + "=" + v);
    std::vector<std::string> argv = {QTOS_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::chdir(cwd.c_str()) != 0) ::_exit(127);
      const int o = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int e = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (o < 0 || e < 0) ::_exit(127);
      ::dup2(o, 1);
      ::dup2(e, 2);
      std::vector<char*> av, ev;
      for (auto& s : argv) av.push_back(s.data());
      av.push_back(nullptr);
      for (auto& s : env) ev.push_back(s.data());
      ev.push_back(nullptr);
      ::execve(av[0], av.data(), ev.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0 && !done_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  /// Waits until stdout contains `text` (true) or `seconds` pass (false).
  bool wait_for_output(const std::string& text, double seconds) const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < until) {
      if (has(slurp(out_), text)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  /// The exit status once the process ends within `seconds`; -1 when it was killed by a signal; -2 on a timeout
  /// (the process is then killed).
  int wait(double seconds) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    int status = 0;
    while (std::chrono::steady_clock::now() < until) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        done_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -2;
  }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

 private:
  std::filesystem::path out_, err_;
  pid_t pid_ = -1;
  bool done_ = false;
};

boost::json::object read_json(const std::filesystem::path& p) { return boost::json::parse(slurp(p)).as_object(); }

class HardeningCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_qtos("data synth --symbols 4 --bars 900 --seed 3 --out syn", dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* HardeningCli::dir_ = nullptr;

// Far more generations than a test can wait for: only a signal ends it.
const std::vector<std::string> kLongEvolve = {"evolve", "--data", "syn", "--population", "32", "--generations", "100000",
                                              "--device", "cpu", "--top", "3"};

TEST_F(HardeningCli, SigintDuringEvolveWritesAPartialHallOfFameAndExits130) {
  TempDir dir;
  std::filesystem::copy(dir_->path() / "syn", dir.path() / "syn");
  auto args = kLongEvolve;
  for (const char* a : {"--out", "hof.json", "--repo", "s.db"}) args.push_back(a);
  Background p(args, dir.path());
  ASSERT_TRUE(p.wait_for_output("evolving 32 genomes", 10)) << p.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  p.signal(SIGINT);
  const int code = p.wait(20);
  ASSERT_EQ(code, 130) << p.out() << p.err();
  EXPECT_TRUE(has(p.out(), "stopped by SIGINT after generation")) << p.out();
  EXPECT_TRUE(has(p.out(), "wrote hof.json (partial hall of fame)")) << p.out();
  const auto j = read_json(dir.path() / "hof.json");
  EXPECT_TRUE(j.at("partial").as_bool());
  EXPECT_EQ(j.at("stopped_by").as_string(), "SIGINT");
  const auto gens = j.at("generations_completed").as_int64();
  EXPECT_GE(gens, 1);
  EXPECT_LT(gens, 100000);
  EXPECT_EQ(j.at("hall_of_fame").as_array().size(), 3u);
  // The repository holds the partial hall of fame and stays readable.
  const auto list = run_qtos("strategies --repo s.db list", dir.path());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(has(list.out, "3 strategies")) << list.out;
}

TEST_F(HardeningCli, SigtermDuringEvolveExits143) {
  TempDir dir;
  std::filesystem::copy(dir_->path() / "syn", dir.path() / "syn");
  auto args = kLongEvolve;
  for (const char* a : {"--out", "hof.json"}) args.push_back(a);
  Background p(args, dir.path());
  ASSERT_TRUE(p.wait_for_output("evolving 32 genomes", 10)) << p.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  p.signal(SIGTERM);
  ASSERT_EQ(p.wait(20), 143) << p.out() << p.err();
  const auto j = read_json(dir.path() / "hof.json");
  EXPECT_TRUE(j.at("partial").as_bool());
  EXPECT_EQ(j.at("stopped_by").as_string(), "SIGTERM");
}

TEST_F(HardeningCli, SigintDuringRetrainRegistersNothingAndExits130) {
  TempDir dir;
  std::filesystem::copy(dir_->path() / "syn", dir.path() / "syn");
  Background p({"retrain", "--data", "syn", "--model", "mlp", "--epochs", "100000", "--patience", "100000", "--registry", "reg"},
               dir.path());
  ASSERT_TRUE(p.wait_for_output("retrain mlp on syn", 20)) << p.err();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  p.signal(SIGINT);
  ASSERT_EQ(p.wait(20), 130) << p.out() << p.err();
  EXPECT_TRUE(has(p.out(), "retrain stopped by SIGINT")) << p.out();
  EXPECT_TRUE(has(p.out(), "nothing was registered")) << p.out();
  const auto list = run_qtos("models list --registry reg --format json", dir.path());
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(boost::json::parse(list.out).as_array().empty()) << list.out;
}

TEST_F(HardeningCli, AFailedOutWriteKeepsThePreviousHallOfFame) {
  TempDir dir;
  std::filesystem::copy(dir_->path() / "syn", dir.path() / "syn");
  const std::string previous = "{\"previous\": \"hall of fame\"}\n";
  std::ofstream(dir / "hof.json") << previous;
  const auto r = run_qtos("evolve --data syn --population 8 --generations 1 --device cpu --top 2 --out hof.json", dir.path(),
                          {{"QTOS_TEST_FAIL_WRITE", "hof.json"}});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_TRUE(has(r.err, "hof.json") && has(r.err, "No space left on device")) << r.err;
  EXPECT_EQ(slurp(dir / "hof.json"), previous);
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_FALSE(has(e.path().filename().string(), ".qtos-tmp-")) << e.path();  // the temporary is removed
}

TEST_F(HardeningCli, OutputsAreCheckedBeforeTheSearchRuns) {
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_qtos("evolve --data syn --population 32 --generations 100000 --device cpu --out missing/hof.json", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--out missing/hof.json") && has(r.err, "does not exist")) << r.err;
  EXPECT_FALSE(has(r.out, "evolving")) << r.out;  // refused before the search started
  r = run_qtos("evolve --data syn --population 32 --generations 100000 --device cpu --repo missing/s.db", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--repo missing/s.db")) << r.err;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  r = run_qtos("retrain --data syn --model mlp --name 'bad name!'", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--name 'bad name!'")) << r.err;
  std::ofstream(dir_->path() / "afile") << "x";
  r = run_qtos("retrain --data syn --model mlp --registry afile/reg", dir_->path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "--registry afile/reg") && has(r.err, "nothing was trained")) << r.err;
  EXPECT_FALSE(has(r.err, "epoch")) << r.err;
}

/// Each command must exit 2 (a usage error) with its option named on stderr, and create nothing.
void expect_usage_errors(const std::vector<std::pair<std::string, std::string>>& cases) {
  TempDir dir;
  for (const auto& [args, option] : cases) {
    const auto r = run_qtos(args, dir.path());
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.err;
    EXPECT_TRUE(has(r.err, option)) << args << "\n" << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "state"));  // nothing was created by the refused commands
}

TEST(HardeningCliUsage, EvolveCountsOutOfRangeAreUsageErrors) {
  const std::string e = "evolve --data syn ";
  expect_usage_errors({{e + "--population -5", "--population: -5 is out of range"},
                       {e + "--generations 0", "--generations"},
                       {e + "--top -1", "--top"},
                       {e + "--folds 0", "--folds: 0 is out of range"},
                       {e + "--folds 2 --purge -1", "--purge"},
                       {e + "--seed -1", "--seed: -1 is out of range; expected an integer >= 0"},
                       {e + "--fee-bps -1", "--fee-bps"}});
}

TEST(HardeningCliUsage, RetrainCountsOutOfRangeAreUsageErrors) {
  const std::string rt = "retrain --data syn --model mlp ";
  expect_usage_errors({{rt + "--epochs 0", "--epochs"},
                       {rt + "--epochs -3", "--epochs"},
                       {rt + "--batch-size 0", "--batch-size"},
                       {rt + "--horizon 0", "--horizon"},
                       {rt + "--window -1", "--window"},
                       {rt + "--patience 0", "--patience"},
                       {rt + "--seed -1", "--seed"},
                       {rt + "--lr 0", "--lr"}});
}

TEST(HardeningCliUsage, OtherVerbsCountsOutOfRangeAreUsageErrors) {
  const std::string bt = "backtest-strategy --data syn --genome g1:1 ";
  expect_usage_errors({{bt + "--max-trades -2", "--max-trades"},
                       {bt + "--to 0", "--to"},
                       {"rank --data syn --top 0", "--top"},
                       {"rank --data syn --top -1", "--top"},
                       {"indicators --data syn --symbol X --indicator rsi --period -3", "--period"},
                       {"events dump log.bin --limit -1", "--limit"}});
}

TEST(HardeningCliUsage, DemoModelsAndStrategiesUsageErrorsExit2) {
  expect_usage_errors({{"demo --symbols 0", "--symbols"},
                       {"demo --seed -1", "--seed"},
                       {"models promote mlp 0", "version"},
                       {"models show mlp -1", "version"},
                       {"strategies list --bogus 1", "--bogus"},
                       {"evolve --population 8", "--data"},  // a missing required option
                       {"evolv", "unknown verb 'evolv'"}});
  TempDir dir;
  EXPECT_EQ(run_qtos("--help", dir.path()).exit_code, 0);
}

TEST(HardeningCliUsage, UnknownQtNamesAreReportedByEveryVerbAndEnvFileMustBeAFile) {
  TempDir dir;
  for (const char* verb : {"version", "strategies --repo none.db list", "models list"}) {
    const auto r = run_qtos(verb, dir.path(), {{"QT_FOO", "1"}});
    EXPECT_TRUE(has(r.err, "warning: QT_FOO (from environment) is not a qtos setting")) << verb << "\n" << r.err;
  }
  std::filesystem::create_directories(dir / "envdir");
  auto r = run_qtos("--env-file envdir version", dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--env-file") && has(r.err, "directory")) << r.err;
  r = run_qtos("--env-file nowhere.env version", dir.path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--env-file") && has(r.err, "nowhere.env")) << r.err;
  // The default ./.env being a directory is named too, by the verbs that read the configuration.
  std::filesystem::create_directories(dir / ".env");
  r = run_qtos("config show", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, ".env file '.env' is a directory")) << r.err;
}

TEST(HardeningCliUsage, ListVerbsOnAMistypedPathCreateNothing) {
  TempDir dir;
  auto r = run_qtos("strategies --repo typo.db list", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "no strategy repository at typo.db")) << r.err;
  r = run_qtos("strategies --repo typo.db show abcd", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  r = run_qtos("strategies --repo typo.db promote abcd --reason x", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "typo.db"));
  r = run_qtos("models list --registry typo", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "no model registry at typo")) << r.err;
  r = run_qtos("models show mlp --registry typo", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  r = run_qtos("models promote mlp 1 --registry typo", dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "typo"));
  // The default registry under QT_STATE_DIR not existing yet is just empty, and is not created either.
  r = run_qtos("models list", dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "no models in")) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dir / "state"));
}

}  // namespace hardening_cli_test
}  // namespace qtos
