#pragma once
/// @file Genomes as text: readable rules, a stable hash, and a compact code that round-trips exactly.

#include <cstdint>
#include <string>
#include <string_view>

#include "cpu/kernels/strategy.hpp"

namespace qtos {

/// Readable rules, e.g. `RSI(14) < 28.0 AND ADX(14) > 22.0 -> long; exit: close > BB(20,2.0).mid or 3.0 ATR stop`.
std::string genome_rules(const kernels::Genome& g);

/// One condition as text (`EMA(10) > EMA(50)`).
std::string condition_text(const kernels::Condition& c);

/// Stable 64-bit hash of a normalised genome (FNV-1a over its 4-byte fields, then a SplitMix finaliser); the same
/// on every platform and build, so it can serve as an id.
std::uint64_t genome_hash(const kernels::Genome& g);

/// 16 lower-case hex digits of the hash.
std::string genome_id(const kernels::Genome& g);

/// A compact code of every field ("g1:" then 19 comma-separated numbers); floats are written exactly.
std::string genome_encode(const kernels::Genome& g);

/// Parses genome_encode's code and normalises it; throws std::invalid_argument naming `what` and the problem.
kernels::Genome genome_decode(std::string_view code, std::string_view what = "--genome");

}  // namespace qtos
