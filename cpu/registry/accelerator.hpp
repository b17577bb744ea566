#pragma once
/// @file The accelerator factories the registry calls: declared here, below both layers, and defined by qtos_cuda
/// (cuda/*.cu, cuda/device.cpp) when the build has CUDA. The registry links qtos_cuda but includes nothing of cuda/,
/// and cuda/ implements an interface of cpu/ (the dependency points down, as everywhere else). Plain C++: no nvcc.

#include <memory>

#include "cpu/backend/device.hpp"
#include "cpu/backtest/backtest.hpp"
#include "cpu/backend/indicator_backend.hpp"
#include "cpu/backend/smoke_backend.hpp"

namespace qtos::cuda {

/// Asks the CUDA runtime for devices once per process (cached); reports 0 devices with the reason instead of throwing.
const DeviceReport& devices_query();

/// The CUDA twin of the smoke computation; `available()` is false when no device is present.
std::unique_ptr<SmokeBackend> smoke_backend_make();

/// The CUDA indicator backend (one warp per symbol, panel kept resident on the device while its id is the same).
std::unique_ptr<IndicatorBackend> indicator_backend_make();

/// The CUDA population-backtest backend (block per genome tile x symbol, bars staged in shared memory).
std::unique_ptr<BacktestBackend> backtest_backend_make();

}  // namespace qtos::cuda
