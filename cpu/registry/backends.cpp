// The backend registry: the one place that names the CUDA backends and the one way a backend is picked.
#include "cpu/registry/backends.hpp"

#include <utility>

#if QTOS_HAVE_CUDA
#include "cpu/registry/accelerator.hpp"
#endif

namespace qtos {
namespace {

/// An accelerator backend that hands the indicator requests it declines to a TBB backend.
class IndicatorRouted final : public IndicatorBackend {
 public:
  IndicatorRouted(std::unique_ptr<IndicatorBackend> first, std::unique_ptr<IndicatorBackend> fallback)
      : first_(std::move(first)), fallback_(std::move(fallback)) {}
  std::string_view name() const override { return first_->name(); }
  bool available() const override { return first_->available(); }

 protected:
  void series_run(const kernels::PanelView& panel, kernels::IndicatorKind kind, const kernels::IndicatorParams& params,
                  std::span<float> out) const override {
    pick({panel, kind}).series(panel, kind, params, out);
  }
  void series_batch_run(const kernels::PanelView& panel, kernels::IndicatorKind kind,
                        std::span<const kernels::IndicatorParams> params, std::uint32_t outputs,
                        std::span<float> out) const override {
    pick({panel, kind}).series_batch(panel, kind, params, outputs, out);
  }
  void features_run(const kernels::PanelView& panel, const kernels::FeatureParams& params, std::int32_t t_begin,
                    std::int32_t t_end, std::span<kernels::FeatureRow> out) const override {
    pick({panel, std::nullopt}).features(panel, params, t_begin, t_end, out);
  }

 private:
  const IndicatorBackend& pick(const IndicatorRequest& r) const { return first_->supports(r) ? *first_ : *fallback_; }
  std::unique_ptr<IndicatorBackend> first_, fallback_;
};

/// An accelerator backend that hands the backtests it declines to a TBB backend.
class BacktestRouted final : public BacktestBackend {
 public:
  BacktestRouted(std::unique_ptr<BacktestBackend> first, std::unique_ptr<BacktestBackend> fallback)
      : first_(std::move(first)), fallback_(std::move(fallback)) {}
  std::string_view name() const override { return first_->name(); }
  bool available() const override { return first_->available(); }

 protected:
  void run_checked(const BacktestRequest& req, BacktestResult& out) const override {
    out = (first_->supports(req) ? *first_ : *fallback_).run(req);
  }

 private:
  std::unique_ptr<BacktestBackend> first_, fallback_;
};

/// An accelerator backend that hands the smoke requests it declines to a TBB backend.
class SmokeRouted final : public SmokeBackend {
 public:
  SmokeRouted(std::unique_ptr<SmokeBackend> first, std::unique_ptr<SmokeBackend> fallback)
      : first_(std::move(first)), fallback_(std::move(fallback)) {}
  std::string_view name() const override { return first_->name(); }
  bool available() const override { return first_->available(); }
  void log_returns(std::span<const float> close, std::span<float> out) const override {
    (first_->supports(close) ? *first_ : *fallback_).log_returns(close, out);
  }

 private:
  std::unique_ptr<SmokeBackend> first_, fallback_;
};

/// The one shape of every list: the accelerator (routed to TBB for what it declines) when there is one, then TBB.
template <class Backend, class Routed>
std::vector<std::unique_ptr<Backend>> backends_list(std::unique_ptr<Backend> accelerator,
                                                    std::unique_ptr<Backend> (*cpu_make)()) {
  std::vector<std::unique_ptr<Backend>> v;
  if (accelerator) v.push_back(std::make_unique<Routed>(std::move(accelerator), cpu_make()));
  v.push_back(cpu_make());
  return v;
}

}  // namespace

const DeviceReport& device_report() {
#if QTOS_HAVE_CUDA
  return cuda::devices_query();
#else
  static const DeviceReport report = [] {
    DeviceReport r;
    r.cuda_error = "built without CUDA";
    return r;
  }();
  return report;
#endif
}

std::vector<std::unique_ptr<IndicatorBackend>> indicator_backends() {
#if QTOS_HAVE_CUDA
  return detail::indicator_backends_with(cuda::indicator_backend_make());
#else
  return detail::indicator_backends_with(nullptr);
#endif
}

std::vector<std::unique_ptr<BacktestBackend>> backtest_backends() {
#if QTOS_HAVE_CUDA
  return detail::backtest_backends_with(cuda::backtest_backend_make());
#else
  return detail::backtest_backends_with(nullptr);
#endif
}

std::vector<std::unique_ptr<SmokeBackend>> smoke_backends() {
#if QTOS_HAVE_CUDA
  return detail::smoke_backends_with(cuda::smoke_backend_make());
#else
  return detail::smoke_backends_with(nullptr);
#endif
}

namespace detail {

void backend_select_fail(DeviceKind kind) {
  if (kind == DeviceKind::cuda) {
    const auto& r = device_report();
    throw std::runtime_error(!r.cuda_compiled ? "--device cuda: this build has no CUDA backends (built with QTOS_CUDA=OFF)"
                                              : "--device cuda: no usable CUDA device (" + r.cuda_error + ")");
  }
  throw std::runtime_error("no backend available for device '" + std::string(device_name(kind)) + "'");
}

std::vector<std::unique_ptr<IndicatorBackend>> indicator_backends_with(std::unique_ptr<IndicatorBackend> accelerator) {
  return backends_list<IndicatorBackend, IndicatorRouted>(std::move(accelerator), &indicator_cpu_backend);
}

std::vector<std::unique_ptr<BacktestBackend>> backtest_backends_with(std::unique_ptr<BacktestBackend> accelerator) {
  return backends_list<BacktestBackend, BacktestRouted>(std::move(accelerator), &backtest_cpu_backend);
}

std::vector<std::unique_ptr<SmokeBackend>> smoke_backends_with(std::unique_ptr<SmokeBackend> accelerator) {
  return backends_list<SmokeBackend, SmokeRouted>(std::move(accelerator), &smoke_cpu_backend);
}

}  // namespace detail
}  // namespace qtos
