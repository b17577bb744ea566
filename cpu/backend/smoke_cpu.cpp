#include <stdexcept>

#include <tbb/parallel_for.h>

#include "cpu/backend/smoke_backend.hpp"
#include "cpu/kernels/smoke.hpp"
#include "cpu/util/parallel.hpp"

namespace qtos {
namespace {

class SmokeCpu final : public SmokeBackend {
 public:
  std::string_view name() const override { return "cpu"; }
  void log_returns(std::span<const float> close, std::span<float> out) const override {
    if (out.size() != close.size()) throw std::invalid_argument("log_returns: out.size() must equal close.size()");
    qtos::parallel_for(tbb::blocked_range<std::size_t>(0, close.size(), 4096), [&](const auto& r) {
      for (std::size_t i = r.begin(); i != r.end(); ++i) out[i] = kernels::log_return_at(close.data(), i);
    });
  }
};

}  // namespace

std::unique_ptr<SmokeBackend> detail::smoke_cpu_backend() { return std::make_unique<SmokeCpu>(); }

void smoke_log_returns_reference(std::span<const float> close, std::span<float> out) {
  for (std::size_t i = 0; i < close.size(); ++i) {
    out[i] = i == 0 || !(close[i - 1] > 0.0f) || !(close[i] > 0.0f)
                 ? NAN
                 : static_cast<float>(std::log(static_cast<double>(close[i]) / static_cast<double>(close[i - 1])));
  }
}

}  // namespace qtos
