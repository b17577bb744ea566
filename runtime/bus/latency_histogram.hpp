#pragma once
/// @file A log-linear histogram of durations in nanoseconds (8 sub-buckets per power of two, so a reported
/// percentile is within 12.5% of the true value). Fixed size, no allocation on record().

#include <array>
#include <bit>
#include <cstdint>

namespace qtos {

/// Histogram of nanosecond durations.
class LatencyHistogram {
 public:
  static constexpr std::size_t kBuckets = 16 + 60 * 8;  ///< exact below 16 ns, 8 per octave above
  /// Adds one sample.
  void record(std::uint64_t ns) {
    ++buckets_[index(ns)];
    ++count_;
    if (ns > max_) max_ = ns;
    sum_ += ns;
  }
  /// Number of samples.
  std::uint64_t count() const { return count_; }
  /// Largest sample.
  std::uint64_t max() const { return max_; }
  /// Mean of the samples (0 when empty).
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  /// Upper bound of the bucket holding the `p`-quantile (p in [0,1]); 0 when empty.
  std::uint64_t percentile(double p) const {
    if (count_ == 0) return 0;
    const auto rank = static_cast<std::uint64_t>(p * static_cast<double>(count_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i];
      if (seen >= rank) return upper_bound(i) < max_ ? upper_bound(i) : max_;
    }
    return max_;
  }
  /// Adds every sample of `other`.
  void merge(const LatencyHistogram& other) {
    for (std::size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
    count_ += other.count_;
    sum_ += other.sum_;
    if (other.max_ > max_) max_ = other.max_;
  }

 private:
  static std::size_t index(std::uint64_t v) {
    if (v < 16) return static_cast<std::size_t>(v);
    const int e = std::bit_width(v) - 1;  // >= 4
    const auto sub = static_cast<std::size_t>((v >> (e - 3)) & 7);
    return 16 + static_cast<std::size_t>(e - 4) * 8 + sub;
  }
  static std::uint64_t upper_bound(std::size_t i) {
    if (i < 16) return i;
    const std::size_t e = (i - 16) / 8 + 4, sub = (i - 16) % 8;
    return ((std::uint64_t{8} + sub + 1) << (e - 3)) - 1;
  }
  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0, max_ = 0, sum_ = 0;
};

}  // namespace qtos
