#pragma once
// Hand-written event-log bytes of format version 1 (before MarketBarClosed had quote_volume and trades), built
// without the current encoder so that reading old logs is tested against the old layout itself.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include <xxhash.h>

#include "runtime/clock/clock.hpp"

namespace qtos::test {

// Little-endian bytes of a hand-written log, independent of the current encoder.
struct Bytes {
  std::string b;
  template <class T>
  Bytes& put(T v) {
    char raw[sizeof(T)];
    std::memcpy(raw, &v, sizeof(T));
    b.append(raw, sizeof(T));
    return *this;
  }
  Bytes& str8(std::string_view s) {
    b.push_back(static_cast<char>(s.size()));
    b.append(s);
    return *this;
  }
};

inline std::string log_header(std::uint32_t version) {
  Bytes h;
  h.b.assign("QTOSEVT\0", 8);
  h.put(version).put(std::uint32_t{0});
  return h.b;
}

inline std::string log_record(const std::string& body) {
  Bytes r;
  r.put(static_cast<std::uint32_t>(body.size())).put(static_cast<std::uint32_t>(XXH32(body.data(), body.size(), 0)));
  return r.b + body;
}

// A version-1 MarketBarClosed body: the payload ends at the base volume.
inline std::string v1_bar_body(std::uint64_t id, TimeNs ts, std::string_view symbol, double close, double volume) {
  Bytes b;
  b.put(std::uint16_t{0}).put(id).put(ts).str8("feed");
  b.str8(symbol).put(std::int32_t{3600}).put(TimeNs{ts - 3600 * kNsPerSecond});
  b.put(close - 1).put(close + 2).put(close - 3).put(close).put(volume);
  return b.b;
}

// A version-1 OrderFilled body (a layout unchanged in version 2).
inline std::string v1_fill_body(std::uint64_t id, TimeNs ts) {
  Bytes b;
  b.put(std::uint16_t{11}).put(id).put(ts).str8("exchange");
  b.put(std::uint64_t{8}).str8("ETHUSDT").put(std::uint8_t{1}).put(0.5).put(2000.0).put(0.1).put(0.0);
  return b.b;
}

}  // namespace qtos::test
