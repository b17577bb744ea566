#pragma once
/// @file SIMD lanes for the indicator step states (cpu/kernels/indicators.hpp): `Lanes<E, W>` holds W values of E in
/// a GCC vector and behaves as a number (arithmetic, comparisons giving a `LaneMask`, `qselect` per lane), so that
/// `SmaState<Lanes<float, 8>>` is the SMA of eight symbols advanced together by the very arithmetic of `SmaState<float>`
/// (the lane-parallel form is derived from the state, not written again). Host only (GCC and Clang vector
/// extensions); the operations are IEEE per lane, so a lane computes exactly what the scalar state computes.
/// Every function is force-inlined: the caller compiles it for the widest registers it targets.

#include <cstdint>
#include <type_traits>

#include "cpu/kernels/indicators.hpp"

namespace qtos::kernels {

template <class E, int W>
struct Lanes;

/// Per-lane truth values of a comparison of `Lanes<E, W>` (all bits set or clear per lane, as the hardware gives).
template <class E, int W>
struct alignas(sizeof(E) * W) LaneMask {
  using Int = std::conditional_t<sizeof(E) == 8, std::int64_t, std::int32_t>;  ///< lane integer of E's width
  typedef Int V __attribute__((vector_size(sizeof(E) * W)));                     ///< the mask vector
  V m;  ///< -1 (true) or 0 per lane
  /// Lanes set in both.
  [[gnu::always_inline]] friend LaneMask operator&(LaneMask a, LaneMask b) { return {a.m & b.m}; }
  /// Lanes set in either.
  [[gnu::always_inline]] friend LaneMask operator|(LaneMask a, LaneMask b) { return {a.m | b.m}; }
  /// Lanes not set.
  [[gnu::always_inline]] LaneMask operator!() const { return {~m}; }
  /// True when some lane is set.
  [[gnu::always_inline]] bool any() const {
    Int acc = 0;
    for (int i = 0; i < W; ++i) acc |= m[i];
    return acc != 0;
  }
};

/// W values of E advanced together; a number to the step states (see the file comment). Aligned to its size
/// explicitly: g++ gives a 32-byte vector 16-byte alignment where the translation unit's baseline ISA has no 32-byte
/// registers, while the AVX clones of a caller assume 32.
template <class E, int W>
struct alignas(sizeof(E) * W) Lanes {
  typedef E V __attribute__((vector_size(sizeof(E) * W)));  ///< the vector
  using Mask = LaneMask<E, W>;                               ///< a comparison's result
  V v;  ///< the lanes
  Lanes() = default;
  /// From a vector.
  [[gnu::always_inline]] Lanes(V x) : v(x) {}  // NOLINT: implicit, the vector is the value
  /// Every lane `s` (as a float or double constant converts to T in a state).
  template <class S, std::enable_if_t<std::is_arithmetic_v<S>, int> = 0>
  [[gnu::always_inline]] Lanes(S s) : v(V{} + E(s)) {}  // NOLINT: implicit, as a scalar T takes a constant
  /// Each lane converted from another element type (float lanes to double lanes and back).
  template <class E2>
  [[gnu::always_inline]] explicit Lanes(Lanes<E2, W> o) : v(__builtin_convertvector(o.v, V)) {}
  /// Lane i.
  [[gnu::always_inline]] E operator[](int i) const { return v[i]; }
  /// Negation per lane.
  [[gnu::always_inline]] Lanes operator-() const { return {-v}; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] friend Lanes operator+(Lanes a, Lanes b) { return {a.v + b.v}; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] friend Lanes operator-(Lanes a, Lanes b) { return {a.v - b.v}; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] friend Lanes operator*(Lanes a, Lanes b) { return {a.v * b.v}; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] friend Lanes operator/(Lanes a, Lanes b) { return {a.v / b.v}; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] Lanes& operator+=(Lanes b) { v += b.v; return *this; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] Lanes& operator-=(Lanes b) { v -= b.v; return *this; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] Lanes& operator*=(Lanes b) { v *= b.v; return *this; }
  /// Per-lane arithmetic.
  [[gnu::always_inline]] Lanes& operator/=(Lanes b) { v /= b.v; return *this; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator<(Lanes a, Lanes b) { return {a.v < b.v}; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator>(Lanes a, Lanes b) { return {a.v > b.v}; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator<=(Lanes a, Lanes b) { return {a.v <= b.v}; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator>=(Lanes a, Lanes b) { return {a.v >= b.v}; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator==(Lanes a, Lanes b) { return {a.v == b.v}; }
  /// Per-lane comparison.
  [[gnu::always_inline]] friend Mask operator!=(Lanes a, Lanes b) { return {a.v != b.v}; }
};

/// Lane types have a scalar: their element.
template <class E, int W>
struct LaneScalar<Lanes<E, W>> {
  using type = E;  ///< the element type
};
/// Lanes of E2 with as many lanes.
template <class E, int W, class E2>
struct LaneRebind<Lanes<E, W>, E2> {
  using type = Lanes<E2, W>;  ///< the rebound type
};

/// a where the mask is set, b elsewhere.
template <class E, int W>
[[gnu::always_inline]] inline Lanes<E, W> qselect(LaneMask<E, W> c, Lanes<E, W> a, Lanes<E, W> b) {
  return {c.m ? a.v : b.v};
}
/// sqrt per lane (vectorised where the caller is compiled without errno for sqrt, e.g. -fno-math-errno).
template <class E, int W>
[[gnu::always_inline]] inline Lanes<E, W> qsqrt(Lanes<E, W> x) {
  typename Lanes<E, W>::V r = x.v;
  for (int i = 0; i < W; ++i) {
    if constexpr (sizeof(E) == 4) r[i] = __builtin_sqrtf(x.v[i]);
    else r[i] = __builtin_sqrt(x.v[i]);
  }
  return {r};
}
/// floor per lane.
template <class E, int W>
[[gnu::always_inline]] inline Lanes<E, W> qfloor(Lanes<E, W> x) {
  typename Lanes<E, W>::V r = x.v;
  for (int i = 0; i < W; ++i) {
    if constexpr (sizeof(E) == 4) r[i] = __builtin_floorf(x.v[i]);
    else r[i] = __builtin_floor(x.v[i]);
  }
  return {r};
}
/// Lanes where x is neither NaN nor infinite.
template <class E, int W>
[[gnu::always_inline]] inline LaneMask<E, W> lanes_finite(Lanes<E, W> x) {
  return (x - x) == Lanes<E, W>(0);
}

}  // namespace qtos::kernels
