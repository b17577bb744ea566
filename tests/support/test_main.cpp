// Shared GoogleTest entry point: quiet logs unless QTOS_TEST_VERBOSE is set.
#include <cstdlib>

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!std::getenv("QTOS_TEST_VERBOSE")) spdlog::set_level(spdlog::level::warn);
  return RUN_ALL_TESTS();
}
