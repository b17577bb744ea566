#pragma once
/// @file Seeded, platform-independent random numbers (the standard distributions are implementation-defined,
/// so qtos draws its own: same seed, same stream, bit for bit).

#include <cmath>
#include <cstdint>

namespace qtos {

__extension__ typedef unsigned __int128 Uint128;  ///< 128-bit product for unbiased range reduction

/// SplitMix64 step: a good 64-bit mix, used to seed streams.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// xoshiro256** generator with helpers for uniform and normal draws.
class Rng {
 public:
  /// A stream determined by (seed, stream): different streams are independent for practical purposes.
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) {
    std::uint64_t sm = seed ^ (stream * 0xD1B54A32D192ED03ull + 0x8CB92BA72F3D8DD7ull);
    for (auto& w : s_) w = splitmix64(sm);
  }
  /// 64 random bits.
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Uniform integer in [0, n) (n > 0), by multiply-shift (bias below 2^-32 for n < 2^32).
  std::uint64_t below(std::uint64_t n) { return static_cast<std::uint64_t>((static_cast<Uint128>(next()) * n) >> 64); }
  /// Standard normal (Marsaglia polar method; no cached spare, so the stream position is simple).
  double normal() {
    for (;;) {
      const double u = 2.0 * uniform() - 1.0, v = 2.0 * uniform() - 1.0;
      const double s = u * u + v * v;
      if (s > 0.0 && s < 1.0) return u * std::sqrt(-2.0 * std::log(s) / s);
    }
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

}  // namespace qtos
