#pragma once
/// @file The one backend registry: the only code that names the CUDA backends. It lists every backend of a
/// computation (CUDA first when compiled in, then TBB), picks one for `--device auto|cpu|cuda`, and hands a request
/// the CUDA backend declines (`supports(request)` false) to the TBB backend. Built as its own library
/// (qtos_backends) above qtos_cpu and qtos_cuda, so neither of those links the other back.

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/backend/device.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backend/smoke_backend.hpp"
#include "cpu/backtest/backtest.hpp"

namespace qtos {

/// What this build and this machine offer: the CUDA runtime's answer (asked once per process), or why there is
/// none ("built without CUDA"); never throws.
const DeviceReport& device_report();

/// Every indicator backend compiled in, CUDA first when present (whether or not a device is available). The CUDA
/// entry runs the requests it declines on a TBB backend of its own, so a picked backend takes every request.
std::vector<std::unique_ptr<IndicatorBackend>> indicator_backends();

/// Every population-backtest backend compiled in, CUDA first when present; declined requests run on TBB.
std::vector<std::unique_ptr<BacktestBackend>> backtest_backends();

/// Every smoke backend compiled in, CUDA first when present; declined requests run on TBB.
std::vector<std::unique_ptr<SmokeBackend>> smoke_backends();

namespace detail {
/// Throws the std::runtime_error of backend_select when no backend of `backends` serves `kind`.
[[noreturn]] void backend_select_fail(DeviceKind kind);

/// The registry's indicator list around `accelerator` instead of the CUDA backend (null: TBB alone). The registry
/// builds its lists through these; tests register fake backends through them.
std::vector<std::unique_ptr<IndicatorBackend>> indicator_backends_with(std::unique_ptr<IndicatorBackend> accelerator);
/// The registry's backtest list around `accelerator` (null: TBB alone).
std::vector<std::unique_ptr<BacktestBackend>> backtest_backends_with(std::unique_ptr<BacktestBackend> accelerator);
/// The registry's smoke list around `accelerator` (null: TBB alone).
std::vector<std::unique_ptr<SmokeBackend>> smoke_backends_with(std::unique_ptr<SmokeBackend> accelerator);
}  // namespace detail

/// Picks a backend from a registry list (CUDA first). `auto` takes the first available one; `cpu`/`cuda` take that
/// one or throw std::runtime_error saying why it cannot run (`--device cuda` without a device is an error, not a
/// silent fallback). A request the picked CUDA backend declines still runs, on TBB.
template <class Backend>
Backend& backend_select(const std::vector<std::unique_ptr<Backend>>& backends, DeviceKind kind) {
  for (const auto& b : backends) {
    if (!b->available()) continue;
    if (kind == DeviceKind::auto_select || b->name() == device_name(kind)) return *b;
  }
  detail::backend_select_fail(kind);
}

}  // namespace qtos
