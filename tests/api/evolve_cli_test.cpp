// `qtos evolve` and `qtos backtest-strategy` through the real binary: end to end on a synthetic market with a planted
// edge (train, validation and test windows; the selected strategy in the JSON), same seed same hall of fame, the hall
// of fame's code replayed by backtest-strategy, random search and a budget, warnings, and bad inputs.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"

namespace qtos {
namespace evolve_cli_test {

using test::run_qtos;
using test::TempDir;

using test::has;

class EvolveCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const auto r = run_qtos("data synth --symbols 10 --bars 3000 --seed 5 --planted-momentum 0.15 --out syn", dir_->path());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static TempDir* dir_;
};
TempDir* EvolveCli::dir_ = nullptr;

boost::json::object read_json(const std::filesystem::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return boost::json::parse(ss.str()).as_object();
}

TEST_F(EvolveCli, EndToEndHallOfFameIsDeterministicAndReplayable) {
  const std::string args = "evolve --data syn --population 32 --generations 5 --seed 3 --device cpu --top 4 --out ";
  const auto a = run_qtos(args + "a.json", dir_->path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  for (const char* s : {"evolving 32 genomes x 5 generations by genetic search on 10 symbols", "train bars [0, 1500), validation bars [1500, 2100), test bars [2100, 3000)",
                        "hall of fame", "ranked by validation Sharpe", "TST SHRP", "VAL DSR", "-> ", "selected: "})
    EXPECT_TRUE(has(a.out, s)) << s << "\n" << a.out;
  EXPECT_TRUE(has(a.err, "best") && has(a.err, "median") && has(a.err, "bar-steps/s")) << a.err;
  const auto b = run_qtos(args + "b.json", dir_->path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto ja = read_json(dir_->path() / "a.json"), jb = read_json(dir_->path() / "b.json");
  const auto& hof = ja.at("hall_of_fame").as_array();
  ASSERT_EQ(hof.size(), 4u);
  EXPECT_EQ(boost::json::serialize(ja.at("hall_of_fame")), boost::json::serialize(jb.at("hall_of_fame")));
  const auto& best = hof[0].as_object();
  // The selected strategy is the first of the hall of fame, with its three windows and the N each DSR was deflated for.
  const auto& sel = ja.at("selected").as_object();
  EXPECT_EQ(sel.at("id"), best.at("id"));
  EXPECT_EQ(sel.at("chosen_on").as_string(), "validation");
  EXPECT_EQ(sel.at("train").at("dsr_trials").as_int64(), ja.at("trials").as_int64());
  EXPECT_EQ(sel.at("validation").at("dsr_trials").as_int64(), 4);  // the hall of fame compared on validation
  EXPECT_EQ(sel.at("test").at("dsr_trials").as_int64(), 1);        // the one choice the test window saw
  EXPECT_EQ(sel.at("validation").at("bars").as_array()[0].as_int64(), 1500);
  EXPECT_EQ(sel.at("test").at("bars").as_array()[0].as_int64(), 2100);
  EXPECT_EQ(sel.at("test").at("sharpe"), best.at("test").at("sharpe"));
  EXPECT_EQ(ja.at("search").as_string(), "genetic");
  // The planted edge is found: the selected genome makes money on the untouched test window.
  EXPECT_GT(best.at("test").at("total_return").as_double(), 0.0);
  EXPECT_GT(best.at("test").at("trades").as_double(), 10.0);

  // backtest-strategy on the test window reproduces the out-of-sample figures of the hall of fame.
  const std::string code(best.at("code").as_string());
  const auto bt = run_qtos("backtest-strategy --data syn --genome " + code + " --from 0.7 --to 1.0 --max-trades 5", dir_->path());
  ASSERT_EQ(bt.exit_code, 0) << bt.err;
  EXPECT_TRUE(has(bt.out, std::string(best.at("rules").as_string()))) << bt.out;
  char trades[64];
  std::snprintf(trades, sizeof trades, "trades %.0f ", best.at("test").at("trades").as_double());
  EXPECT_TRUE(has(bt.out, trades)) << trades << "\n" << bt.out;
  EXPECT_TRUE(has(bt.out, "SYMBOL") && has(bt.out, "REASON") && has(bt.out, "more trades")) << bt.out;
  // --rules FILE and CSV output.
  {
    std::ofstream f(dir_->path() / "rules.txt");
    f << "# best genome\n" << code << "\n";
  }
  const auto csv = run_qtos("backtest-strategy --data syn --rules rules.txt --format csv --max-trades 3", dir_->path());
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_TRUE(has(csv.out, "symbol,side,entry_time,exit_time")) << csv.out;
}

TEST_F(EvolveCli, RepositoryLifecycleThroughTheCli) {
  const auto e = run_qtos("evolve --data syn --population 16 --generations 2 --seed 4 --device cpu --top 3 --repo s.db", dir_->path());
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_TRUE(has(e.out, "stored 3 strategies in s.db (3 new)")) << e.out;
  const auto l = run_qtos("strategies --repo s.db list --status backtest", dir_->path());
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_TRUE(has(l.out, "3 strategies")) << l.out;
  // The id of the first listed strategy (first column of the second line).
  const std::string id = l.out.substr(l.out.find('\n') + 1, 16);
  auto r = run_qtos("strategies --repo s.db promote " + id.substr(0, 6) + " --reason \"OOS ok\"", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, id + ": BACKTEST -> SHADOW (OOS ok)")) << r.out;
  r = run_qtos("strategies --repo s.db promote " + id + " --reason \"shadow ok\"", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "SHADOW -> LIVE")) << r.out;
  r = run_qtos("strategies --repo s.db promote " + id + " --reason again", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "is LIVE; it cannot move to LIVE")) << r.err;
  r = run_qtos("strategies --repo s.db retire " + id + " --reason \"below floor\"", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto s = run_qtos("strategies --repo s.db show " + id, dir_->path());
  ASSERT_EQ(s.exit_code, 0) << s.err;
  for (const char* w : {"status     RETIRED", "\"validation\"", "\"test\"", "BACKTEST -> SHADOW  OOS ok", "LIVE -> RETIRED  below floor", "code       g1:"})
    EXPECT_TRUE(has(s.out, w)) << w << "\n" << s.out;
  // backtest-strategy takes the repository id (a prefix is enough) as well as the genome code.
  const auto byid = run_qtos("backtest-strategy --data syn --repo s.db --genome " + id.substr(0, 8) + " --max-trades 1", dir_->path());
  ASSERT_EQ(byid.exit_code, 0) << byid.err;
  EXPECT_TRUE(has(byid.out, "strategy " + id + ":")) << byid.out;
  r = run_qtos("backtest-strategy --data syn --repo s.db --genome ffff0000", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "no strategy with this id in s.db")) << r.err;
  r = run_qtos("strategies --repo s.db show ffff0000", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "not in s.db")) << r.err;
}

TEST_F(EvolveCli, WalkForwardFoldsAndLineage) {
  const std::string args = "evolve --data syn --population 24 --generations 3 --seed 3 --device cpu --top 3 --folds 3 --purge 100 ";
  const auto a = run_qtos(args + "--out wf.json --repo wf.db", dir_->path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  for (const char* w : {"walk-forward: 3 folds (anchored), purge 100 bars, objective sharpe", "fold 1: train bars [0, 488), validation bars [488, 650), test bars [750, 1500)",
                        "fold 3: train bars [0, 1613), validation bars [1613, 2150), test bars [2250, 3000)", "walk-forward OOS", "efficiency", "trials in all folds",
                        "final hall of fame: the last fold's", "parents: "})
    EXPECT_TRUE(has(a.out, w)) << w << "\n" << a.out;
  EXPECT_TRUE(has(a.err, "fold 3 gen 3")) << a.err;
  const auto j = read_json(dir_->path() / "wf.json");
  const auto& wf = j.at("walk_forward").as_object();
  const auto& folds = wf.at("folds").as_array();
  ASSERT_EQ(folds.size(), 3u);
  std::int64_t trials = 0;
  for (std::size_t k = 0; k < 3; ++k) {
    const auto& f = folds[k].as_object();
    const auto& train = f.at("train").as_array();
    const auto& validation = f.at("validation").as_array();
    const auto& test = f.at("test").as_array();
    EXPECT_EQ(train[0].as_int64(), 0);
    EXPECT_EQ(train[1].as_int64(), validation[0].as_int64());
    EXPECT_EQ(validation[1].as_int64() + 100, test[0].as_int64());  // the purge gap: no earlier bar touches the test block
    EXPECT_EQ(test[0].as_int64(), 750 * static_cast<std::int64_t>(k + 1));
    trials += f.at("trials").as_int64();
  }
  EXPECT_EQ(wf.at("trials").as_int64(), trials);
  EXPECT_TRUE(wf.at("pooled_out_of_sample").as_object().contains("sharpe"));
  EXPECT_TRUE(wf.contains("efficiency") && wf.contains("deflated_sharpe"));
  EXPECT_EQ(j.at("test").as_array()[0].as_int64(), 2250);  // the hall of fame is the last fold's
  // Lineage in the JSON and the repository: parents are ids (16 hex digits); the repository shows the same ones.
  const auto& hof = j.at("hall_of_fame").as_array();
  ASSERT_EQ(hof.size(), 3u);
  for (const auto& h : hof) {
    const auto& o = h.as_object();
    const auto& parents = o.at("parents").as_array();
    EXPECT_LE(parents.size(), 2u);
    if (o.at("generation").as_int64() == 0) {
      EXPECT_TRUE(parents.empty());
    }
    std::string expect = "parents    ";
    for (std::size_t i = 0; i < parents.size(); ++i) {
      EXPECT_EQ(parents[i].as_string().size(), 16u);
      expect += (i ? ", " : "") + std::string(parents[i].as_string());
    }
    if (parents.empty()) expect += "- (random genome)";
    const auto s = run_qtos("strategies --repo wf.db show " + std::string(o.at("id").as_string()), dir_->path());
    ASSERT_EQ(s.exit_code, 0) << s.err;
    EXPECT_TRUE(has(s.out, expect)) << expect << "\n" << s.out;
  }
  // Same seed, same folds, same lineage.
  const auto b = run_qtos(args + "--out wf2.json", dir_->path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto j2 = read_json(dir_->path() / "wf2.json");
  EXPECT_EQ(boost::json::serialize(j.at("walk_forward")), boost::json::serialize(j2.at("walk_forward")));
  EXPECT_EQ(boost::json::serialize(j.at("hall_of_fame")), boost::json::serialize(j2.at("hall_of_fame")));
}

TEST_F(EvolveCli, BadFoldsAndObjectiveAreNamed) {
  const std::string base = "evolve --data syn --population 8 --generations 1 --device cpu ";
  auto r = run_qtos(base + "--folds 200", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--folds: 200 is out of range; expected an integer from 1 to 100")) << r.err;
  r = run_qtos(base + "--folds 12", dir_->path());  // blocks of 230 bars leave fold 1 30 bars after the purge: 23 + 7
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--folds 12 with --purge 200 on 3000 bars: fold 1 would train on 23 bars, validate on 7")) << r.err;
  r = run_qtos(base + "--folds 2 --train 0.5", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--folds") && has(r.err, "--train")) << r.err;
  r = run_qtos(base + "--purge 10", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--purge") && has(r.err, "--folds")) << r.err;
  r = run_qtos(base + "--objective calmar", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--objective 'calmar': expected sharpe or pareto")) << r.err;
}

TEST_F(EvolveCli, RandomSearchWithABudgetIsTheSameProtocol) {
  const auto a = run_qtos("evolve --data syn --search random --budget 60 --population 16 --generations 3 --seed 2 --device cpu --top 3 "
                          "--out r.json",
                          dir_->path());
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_TRUE(has(a.out, "evolving 16 genomes x 3 generations (or a 60 s budget, whichever ends first) by random search")) << a.out;
  EXPECT_TRUE(has(a.out, "(budget 60 s)")) << a.out;
  const auto j = read_json(dir_->path() / "r.json");
  EXPECT_EQ(j.at("search").as_string(), "random");
  EXPECT_EQ(j.at("budget_seconds").as_double(), 60.0);
  EXPECT_EQ(j.at("trials").as_int64(), 48);  // three batches of 16 genomes never tried before
  for (const auto& h : j.at("hall_of_fame").as_array()) EXPECT_TRUE(h.at("parents").as_array().empty());
  EXPECT_EQ(j.at("selected").at("id"), j.at("hall_of_fame").as_array()[0].at("id"));
  // --budget alone: the budget ends the search, and the run says how long it took.
  const auto b = run_qtos("evolve --data syn --budget 1 --population 16 --seed 2 --device cpu --top 3 --out b.json", dir_->path());
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_TRUE(has(b.out, "evolving 16 genomes per generation for a 1 s budget by genetic search")) << b.out;
  const auto jb = read_json(dir_->path() / "b.json");
  EXPECT_GE(jb.at("search_seconds").as_double(), 1.0);
  EXPECT_GT(jb.at("generations_completed").as_int64(), 1);
}

TEST_F(EvolveCli, IndicatorsThatCannotWarmUpAreNamed) {
  // A 60-bar train window: EMA(100) and EMA(200) never have a value there.
  const auto r = run_qtos("evolve --data syn --train 0.02 --validation 0.01 --test 0.1 --population 8 --generations 1 --device cpu", dir_->path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.err, "warning: 2 indicator(s) of the grammar never warm up on the train window [0, 60): EMA(100), EMA(200)")) << r.err;
  const auto ok = run_qtos("evolve --data syn --population 8 --generations 1 --device cpu", dir_->path());
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_FALSE(has(ok.err, "warning:")) << ok.err;
}

TEST_F(EvolveCli, BadInputsAreNamed) {
  auto r = run_qtos("evolve --data syn --population 2 --generations 1", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--population: 2 is out of range; expected an integer from 4 to 1000000")) << r.err;
  r = run_qtos("evolve --data syn --train 0.8 --test 0.5 --population 8 --generations 1", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "train + validation + test <= 1")) << r.err;
  r = run_qtos("evolve --data syn --population 8 --generations 1 --search annealing", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--search 'annealing': expected genetic or random")) << r.err;
  r = run_qtos("evolve --data syn --population 8 --generations 1 --budget -1", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--budget")) << r.err;
  r = run_qtos("evolve --data syn --symbols NOPE --population 8 --generations 1", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "no symbol 'NOPE'")) << r.err;
  r = run_qtos("backtest-strategy --data syn --genome g1:1,2", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "19 comma-separated fields")) << r.err;
  r = run_qtos("backtest-strategy --data syn", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "--genome CODE|ID or --rules FILE")) << r.err;
  r = run_qtos("backtest-strategy --data syn --genome abcd1234 --repo none.db", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "repository 'none.db' does not exist")) << r.err;
  r = run_qtos("backtest-strategy --data syn --genome xyz", dir_->path());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(has(r.err, "expected a genome code (g1:...) or a strategy id")) << r.err;
  r = run_qtos("evolve --data syn --population 8 --generations 1 --slippage-spread -0.5", dir_->path());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.err, "--slippage-spread: -0.5 is out of range; expected a number from 0 to 10")) << r.err;
}

}  // namespace evolve_cli_test
}  // namespace qtos
