#pragma once
/// @file Smoke computation shared by every backend: the log return of a price series.
/// It exists to prove that one QTOS_HD function gives the same numbers on CPU and GPU.

#include <cmath>
#include <cstddef>

#include "cpu/kernels/qtos_hd.hpp"

namespace qtos::kernels {

/// Log return between two prices; NaN when either price is missing (NaN) or not positive.
template <class T>
QTOS_HD inline T log_return(T prev, T cur) {
  if (!(prev > T(0)) || !(cur > T(0))) return T(NAN);
  return log(cur / prev);
}

/// Element i of the log-return series of `close` (element 0 has no predecessor and is NaN).
template <class T>
QTOS_HD inline T log_return_at(const T* close, std::size_t i) {
  return i == 0 ? T(NAN) : log_return(close[i - 1], close[i]);
}

}  // namespace qtos::kernels
