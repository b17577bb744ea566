#include "cpu/strategy/genome_text.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace qtos {

using kernels::CondKind;
using kernels::Condition;
using kernels::Genome;

namespace {

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

const char* band_name(std::int32_t b) { return b == 1 ? "upper" : (b == 2 ? "lower" : "mid"); }

// Field order of the code and of the hash.
void fields(const Genome& g, std::uint32_t out[19]) {
  auto bits = [](float f) { std::uint32_t u; std::memcpy(&u, &f, 4); return u; };
  int i = 0;
  for (const Condition* c : {&g.entry[0], &g.entry[1]}) {
    out[i++] = static_cast<std::uint32_t>(c->kind); out[i++] = static_cast<std::uint32_t>(c->p0);
    out[i++] = static_cast<std::uint32_t>(c->p1); out[i++] = bits(c->level);
  }
  out[i++] = static_cast<std::uint32_t>(g.op);
  out[i++] = static_cast<std::uint32_t>(g.exit_rule.kind); out[i++] = static_cast<std::uint32_t>(g.exit_rule.p0);
  out[i++] = static_cast<std::uint32_t>(g.exit_rule.p1); out[i++] = bits(g.exit_rule.level);
  out[i++] = static_cast<std::uint32_t>(g.side);
  out[i++] = bits(g.stop_atr); out[i++] = bits(g.take_atr); out[i++] = bits(g.trail_atr);
  out[i++] = static_cast<std::uint32_t>(g.max_hold); out[i++] = bits(g.size);
}

}  // namespace

std::string condition_text(const Condition& c) {
  using namespace kernels;
  switch (static_cast<CondKind>(c.kind)) {
    case CondKind::none: return "never";
    case CondKind::ma_above:
    case CondKind::ma_below:
      return "EMA(" + std::to_string(kEmaPeriods[c.p0]) + (c.kind == static_cast<std::int32_t>(CondKind::ma_above) ? ") > EMA(" : ") < EMA(") +
             std::to_string(kEmaPeriods[c.p1]) + ")";
    case CondKind::close_above_bb:
    case CondKind::close_below_bb:
      return std::string("close ") + (c.kind == static_cast<std::int32_t>(CondKind::close_above_bb) ? "> " : "< ") + "BB(" +
             std::to_string(kBbPeriods[c.p0]) + "," + fmt("%.1f", c.level) + ")." + band_name(c.p1);
    case CondKind::rsi_below:
    case CondKind::rsi_above:
      return "RSI(" + std::to_string(kRsiPeriods[c.p0]) + (c.kind == static_cast<std::int32_t>(CondKind::rsi_above) ? ") > " : ") < ") +
             fmt("%.1f", c.level);
    case CondKind::adx_above:
    case CondKind::adx_below:
      return "ADX(" + std::to_string(kAdxPeriods[c.p0]) + (c.kind == static_cast<std::int32_t>(CondKind::adx_above) ? ") > " : ") < ") +
             fmt("%.1f", c.level);
    case CondKind::mom_up:
    case CondKind::mom_down:
      return "ROC(" + std::to_string(kRocPeriods[c.p0]) + (c.kind == static_cast<std::int32_t>(CondKind::mom_up) ? ") > 0" : ") < 0");
    case CondKind::vol_high:
    case CondKind::vol_low:
      return "ATR(14)% " + std::string(c.kind == static_cast<std::int32_t>(CondKind::vol_high) ? "> " : "< ") + fmt("%.2f", c.level);
  }
  return "?";
}

std::string genome_rules(const Genome& g_in) {
  using namespace kernels;
  const Genome g = genome_normalize(g_in);
  std::string s = condition_text(g.entry[0]);
  if (g.op != static_cast<std::int32_t>(EntryOp::single))
    s += (g.op == static_cast<std::int32_t>(EntryOp::and_op) ? " AND " : " OR ") + condition_text(g.entry[1]);
  s += g.side == static_cast<std::int32_t>(Side::long_only) ? " -> long"
       : g.side == static_cast<std::int32_t>(Side::short_only) ? " -> short"
                                                                : " -> long (mirrored -> short)";
  std::vector<std::string> exits;
  if (g.exit_rule.kind != static_cast<std::int32_t>(CondKind::none)) exits.push_back(condition_text(g.exit_rule));
  if (g.stop_atr > 0) exits.push_back(fmt("%.1f ATR stop", g.stop_atr));
  if (g.take_atr > 0) exits.push_back(fmt("%.1f ATR target", g.take_atr));
  if (g.trail_atr > 0) exits.push_back(fmt("%.1f ATR trailing stop", g.trail_atr));
  if (g.max_hold > 0) exits.push_back(std::to_string(g.max_hold) + " bars");
  s += "; exit: ";
  if (exits.empty()) s += "end of data";
  for (std::size_t i = 0; i < exits.size(); ++i) s += (i ? " or " : "") + exits[i];
  s += fmt("; size %.0f%%", 100.0 * g.size);
  return s;
}

std::uint64_t genome_hash(const Genome& g) {
  std::uint32_t f[19];
  fields(g, f);
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::uint32_t v : f)
    for (int b = 0; b < 4; ++b) {
      h ^= (v >> (8 * b)) & 0xffu;
      h *= 0x100000001b3ull;
    }
  h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27; h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

std::string genome_id(const Genome& g) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(genome_hash(g)));
  return buf;
}

std::string genome_encode(const Genome& g) {
  std::string s = "g1:";
  auto i = [&](std::int32_t v) { s += std::to_string(v) + ","; };
  auto f = [&](float v) { s += fmt("%.9g", v) + ","; };
  for (const Condition* c : {&g.entry[0], &g.entry[1]}) { i(c->kind); i(c->p0); i(c->p1); f(c->level); }
  i(g.op);
  i(g.exit_rule.kind); i(g.exit_rule.p0); i(g.exit_rule.p1); f(g.exit_rule.level);
  i(g.side); f(g.stop_atr); f(g.take_atr); f(g.trail_atr); i(g.max_hold); f(g.size);
  s.pop_back();
  return s;
}

Genome genome_decode(std::string_view code, std::string_view what) {
  const std::string bad = std::string(what) + " '" + std::string(code) + "': ";
  if (code.substr(0, 3) != "g1:") throw std::invalid_argument(bad + "expected a genome code starting with 'g1:' (as printed by qtos evolve)");
  std::vector<std::string> parts;
  std::string cur;
  for (char ch : code.substr(3)) {
    if (ch == ',') { parts.push_back(cur); cur.clear(); } else { cur += ch; }
  }
  parts.push_back(cur);
  if (parts.size() != 19) throw std::invalid_argument(bad + "expected 19 comma-separated fields, got " + std::to_string(parts.size()));
  std::size_t k = 0;
  auto num = [&](bool is_float) -> double {
    const std::string& p = parts[k];
    errno = 0;
    char* end = nullptr;
    const double v = is_float ? static_cast<double>(std::strtof(p.c_str(), &end)) : static_cast<double>(std::strtol(p.c_str(), &end, 10));
    if (p.empty() || end != p.c_str() + p.size() || errno != 0)
      throw std::invalid_argument(bad + "field " + std::to_string(k + 1) + " ('" + p + "') is not " + (is_float ? "a number" : "an integer"));
    ++k;
    return v;
  };
  Genome g;
  for (Condition* c : {&g.entry[0], &g.entry[1]}) {
    c->kind = static_cast<std::int32_t>(num(false)); c->p0 = static_cast<std::int32_t>(num(false));
    c->p1 = static_cast<std::int32_t>(num(false)); c->level = static_cast<float>(num(true));
  }
  g.op = static_cast<std::int32_t>(num(false));
  g.exit_rule.kind = static_cast<std::int32_t>(num(false)); g.exit_rule.p0 = static_cast<std::int32_t>(num(false));
  g.exit_rule.p1 = static_cast<std::int32_t>(num(false)); g.exit_rule.level = static_cast<float>(num(true));
  g.side = static_cast<std::int32_t>(num(false));
  g.stop_atr = static_cast<float>(num(true)); g.take_atr = static_cast<float>(num(true)); g.trail_atr = static_cast<float>(num(true));
  g.max_hold = static_cast<std::int32_t>(num(false)); g.size = static_cast<float>(num(true));
  return kernels::genome_normalize(g);
}

}  // namespace qtos
