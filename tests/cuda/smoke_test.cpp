// CPU/CUDA smoke pair: the same QTOS_HD function on every backend against a serial double-precision reference.
#include <cmath>
#include <vector>

#include <gtest/gtest.h>

#include "cpu/backend/smoke_backend.hpp"
#include "cpu/registry/backends.hpp"

namespace qtos {
namespace smoke_test {

std::vector<float> prices(std::size_t n) {
  std::vector<float> p(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = 100.0f + 10.0f * std::sin(0.01f * static_cast<float>(i)) + 0.001f * i;
  if (n > 40) p[40] = NAN;  // a missing bar must give NaN on both sides of it
  return p;
}

// Relative tolerance: logf on host and device may differ by a few ulp, and the reference divides in double.
constexpr float kTol = 2e-5f;

void expect_matches_reference(const SmokeBackend& backend, std::size_t n) {
  const auto p = prices(n);
  std::vector<float> got(n, -1.0f), want(n);
  backend.log_returns(p, got);
  smoke_log_returns_reference(p, want);
  for (std::size_t i = 0; i < n; ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << backend.name() << " n=" << n << " i=" << i;
    } else {
      EXPECT_NEAR(got[i], want[i], kTol * std::fabs(want[i]) + 1e-7f) << backend.name() << " n=" << n << " i=" << i;
    }
  }
}

class SmokeBackends : public ::testing::TestWithParam<std::size_t> {};

TEST_P(SmokeBackends, EveryBackendMatchesSerialReference) {
  int ran = 0;
  for (const auto& b : smoke_backends()) {
    if (!b->available()) continue;
    expect_matches_reference(*b, GetParam());
    ++ran;
  }
  EXPECT_GE(ran, 1) << "the CPU backend must always run";
}

INSTANTIATE_TEST_SUITE_P(Sizes, SmokeBackends, ::testing::Values(0, 1, 31, 32, 33, 257, 100000));

TEST(SmokeCuda, MatchesCpuOrSkipsWithoutDevice) {
  const auto& report = device_report();
  if (report.cuda_devices == 0) GTEST_SKIP() << "no CUDA device: " << report.cuda_error;
  auto backends = smoke_backends();
  auto& cuda = backend_select(backends, DeviceKind::cuda);
  EXPECT_EQ(cuda.name(), "cuda");
  expect_matches_reference(cuda, 1 << 20);
}

TEST(DeviceSelection, CudaRequestWithoutDeviceIsAClearError) {
  if (device_report().cuda_devices > 0) GTEST_SKIP() << "a CUDA device is present";
  auto backends = smoke_backends();
  EXPECT_EQ(backend_select(backends, DeviceKind::auto_select).name(), "cpu");
  try {
    backend_select(backends, DeviceKind::cuda);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("--device cuda"), std::string::npos) << e.what();
  }
}

TEST(DeviceSelection, ParseNamesTheBadValue) {
  EXPECT_EQ(device_parse("CPU"), DeviceKind::cpu);
  EXPECT_EQ(device_parse("auto"), DeviceKind::auto_select);
  try {
    device_parse("tpu", "QT_DEVICE");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("QT_DEVICE: 'tpu'"), std::string::npos) << e.what();
  }
}

}  // namespace smoke_test
}  // namespace qtos
