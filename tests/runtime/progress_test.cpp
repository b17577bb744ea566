// Progress output: a redrawn bar on a terminal, plain lines elsewhere, and nothing repeated at the end.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "runtime/util/progress.hpp"

namespace qtos {
namespace progress_test {

std::string run(bool terminal) {
  std::FILE* f = std::tmpfile();
  {
    Progress p("work", 100, f);
    p.set_terminal(terminal);
    for (int i = 1; i <= 100; ++i) p.update(static_cast<std::uint64_t>(i), "ok");
    p.finish();
  }
  std::rewind(f);
  std::string s;
  for (int c; (c = std::fgetc(f)) != EOF;) s.push_back(static_cast<char>(c));
  std::fclose(f);
  return s;
}

TEST(Progress, TerminalRedrawsOneLineWithABar) {
  const std::string s = run(true);
  EXPECT_EQ(s.front(), '\r');
  EXPECT_NE(s.find("work [##############################] 100%"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '\n');
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 1);
}

TEST(Progress, PlainModeLogsAboutEveryTenthAndEndsOnce) {
  const std::string s = run(false);
  EXPECT_EQ(s.find('\r'), std::string::npos);
  const auto lines = std::count(s.begin(), s.end(), '\n');
  EXPECT_GE(lines, 10);
  EXPECT_LE(lines, 12);
  const auto first = s.find("work: 100/100 (100%)");
  ASSERT_NE(first, std::string::npos) << s;
  EXPECT_EQ(s.find("work: 100/100 (100%)", first + 1), std::string::npos) << "the final line must not repeat:\n" << s;
}

}  // namespace progress_test
}  // namespace qtos
