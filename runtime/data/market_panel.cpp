#include "runtime/data/market_panel.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string_view>

#include <xxhash.h>

#include "runtime/util/atomic_file.hpp"
#include "runtime/util/result.hpp"

namespace qtos {
namespace {

constexpr char kMagic[8] = {'Q', 'T', 'O', 'S', 'P', 'N', 'L', '\0'};
constexpr std::uint32_t kVersion = 1;
constexpr std::uint64_t kHeaderSize = 4096;
constexpr std::int64_t kStrideAlign = 16;  // floats: 64 bytes

// On-disk header (little-endian, the first kHeaderSize bytes of the file). docs/DATA.md describes it.
struct FileHeader {
  char magic[8];
  std::uint32_t version;
  std::uint32_t header_size;
  std::uint32_t n_symbols;
  std::int32_t n_bars;
  std::int64_t stride;
  std::int64_t t0_ms;
  std::int64_t interval_ms;
  std::uint64_t file_size;
  std::uint64_t ranges_offset;   // int32 first[n_symbols], int32 last[n_symbols]
  std::uint64_t symbols_offset;  // per symbol: uint16 length + bytes
  std::uint64_t symbols_size;
  std::uint64_t columns_offset;  // kColumnCount columns of n_symbols * stride floats, each 4096-aligned
  std::uint64_t column_bytes;    // bytes between column starts
  std::uint64_t payload_xxh3;    // XXH3-64 of bytes [header_size, file_size)
  std::uint64_t header_xxh3;     // XXH3-64 of this struct with header_xxh3 = 0
};
static_assert(sizeof(FileHeader) <= kHeaderSize);

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint64_t header_hash(FileHeader h) {
  h.header_xxh3 = 0;
  return XXH3_64bits(&h, sizeof h);
}

void free_aligned(float* p) { std::free(p); }

std::int64_t stride_for(std::int64_t n_bars) {
  return std::max<std::int64_t>(kStrideAlign, (n_bars + kStrideAlign - 1) / kStrideAlign * kStrideAlign);
}

/// MemAvailable from /proc/meminfo in bytes, or the free physical pages where there is none.
std::uint64_t meminfo_available() {
  std::ifstream in("/proc/meminfo");
  for (std::string key; in >> key;) {
    std::uint64_t kb = 0;
    in >> kb;
    if (key == "MemAvailable:") return kb * 1024;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
                               : std::numeric_limits<std::uint64_t>::max();
}

// Identities of panel contents (kernels::PanelView::id), unique in the process; 0 is never handed out.
std::uint64_t panel_id_next() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

std::uint64_t panel_bytes(std::uint64_t n_symbols, std::int64_t n_bars) {
  const auto stride = static_cast<std::uint64_t>(stride_for(std::max<std::int64_t>(n_bars, 0)));
  const long double bytes = static_cast<long double>(n_symbols) * stride * kColumnCount * sizeof(float);
  return bytes >= static_cast<long double>(std::numeric_limits<std::uint64_t>::max()) ? std::numeric_limits<std::uint64_t>::max()
                                                                                        : static_cast<std::uint64_t>(bytes);
}

std::uint64_t memory_available_bytes() {
  std::uint64_t avail = meminfo_available();
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit rl {};
    if (::getrlimit(resource, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) avail = std::min<std::uint64_t>(avail, rl.rlim_cur);
  }
  if (const char* env = std::getenv("QTOS_TEST_MEMORY_BYTES"); env && *env) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(env, &end, 10);
    if (end && *end == '\0') avail = std::min<std::uint64_t>(avail, v);
  }
  return avail;
}

std::string bytes_human(std::uint64_t bytes) {
  char buf[48];
  const double b = static_cast<double>(bytes);
  if (b >= 1e9)
    std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6)
    std::snprintf(buf, sizeof buf, "%.0f MB", b / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.0f kB", b / 1e3);
  return buf;
}

void panel_memory_check(std::uint64_t n_symbols, std::int64_t n_bars, const std::string& what) {
  const std::uint64_t need = panel_bytes(n_symbols, n_bars), have = memory_available_bytes();
  if (need > have)
    throw PanelTooLarge(what + " needs " + bytes_human(need) + " of memory, have " + bytes_human(have) + " available");
}

struct MarketPanel::Mapping {
  void* addr = nullptr;
  std::size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

MarketPanel::MarketPanel(std::vector<std::string> symbols, std::int32_t n_bars, std::int64_t t0_ms, std::int64_t interval_ms)
    : symbols_(std::move(symbols)), n_bars_(n_bars), t0_ms_(t0_ms), interval_ms_(interval_ms) {
  if (n_bars < 0) throw std::invalid_argument("panel: the number of bars must be >= 0, got " + std::to_string(n_bars));
  if (interval_ms <= 0) throw std::invalid_argument("panel: the bar interval must be > 0 ms, got " + std::to_string(interval_ms));
  if (symbols_.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
    throw std::invalid_argument("panel: too many symbols (" + std::to_string(symbols_.size()) + ")");
  for (std::size_t i = 0; i < symbols_.size(); ++i) {
    if (symbols_[i].empty() || symbols_[i].size() > 64)
      throw std::invalid_argument("panel: symbol #" + std::to_string(i) + " '" + symbols_[i] + "' must have 1 to 64 characters");
  }
  {
    auto sorted = symbols_;
    std::sort(sorted.begin(), sorted.end());
    if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end())
      throw std::invalid_argument("panel: symbol '" + *it + "' appears twice");
  }
  const std::string shape = "a panel of " + std::to_string(symbols_.size()) + " symbols x " + std::to_string(n_bars) + " bars";
  panel_memory_check(symbols_.size(), n_bars, shape);
  stride_ = stride_for(n_bars);
  const std::size_t per_col = symbols_.size() * static_cast<std::size_t>(stride_);
  const std::size_t bytes = std::max<std::size_t>(64, per_col * kColumnCount * sizeof(float));
  auto* block = static_cast<float*>(std::aligned_alloc(64, align_up(bytes, 64)));
  if (!block)
    throw PanelTooLarge(shape + " needs " + bytes_human(bytes) + " of memory, have less (allocation failed)");
  owned_ = std::unique_ptr<float, void (*)(float*)>(block, free_aligned);
  for (int c = 0; c < kColumnCount; ++c) {
    float* col = block + per_col * static_cast<std::size_t>(c);
    const bool is_price = c <= static_cast<int>(Column::close);
    std::fill(col, col + per_col, is_price ? std::numeric_limits<float>::quiet_NaN() : 0.0f);
    cols_[c] = col;
  }
  first_.assign(symbols_.size(), 0);
  last_.assign(symbols_.size(), -1);
  id_ = panel_id_next();
}

MarketPanel::MarketPanel(MarketPanel&&) noexcept = default;
MarketPanel& MarketPanel::operator=(MarketPanel&&) noexcept = default;
MarketPanel::~MarketPanel() = default;

std::int32_t MarketPanel::bar_at_or_before(std::int64_t ms) const {
  if (n_bars_ == 0 || ms < t0_ms_) return -1;
  const std::int64_t t = (ms - t0_ms_) / interval_ms_;
  return static_cast<std::int32_t>(std::min<std::int64_t>(t, n_bars_ - 1));
}

std::int32_t MarketPanel::symbol_index(std::string_view symbol) const {
  for (std::size_t i = 0; i < symbols_.size(); ++i)
    if (symbols_[i] == symbol) return static_cast<std::int32_t>(i);
  return -1;
}

std::span<const float> MarketPanel::series(Column c, std::int32_t s) const {
  QTOS_ASSERT(s >= 0 && s < n_symbols(), "symbol index out of range");
  return {cols_[static_cast<int>(c)] + s * stride_, static_cast<std::size_t>(n_bars_)};
}

std::span<float> MarketPanel::series_mut(Column c, std::int32_t s) {
  QTOS_ASSERT(owned_ != nullptr, "series_mut on a memory-mapped panel");
  QTOS_ASSERT(s >= 0 && s < n_symbols(), "symbol index out of range");
  // The caller may change the contents: a new identity. Threads filling different rows call this at once.
  std::atomic_ref<std::uint64_t>(id_).store(panel_id_next(), std::memory_order_relaxed);
  return {const_cast<float*>(cols_[static_cast<int>(c)]) + s * stride_, static_cast<std::size_t>(n_bars_)};
}

bool MarketPanel::has_bar(std::int32_t s, std::int32_t t) const {
  return t >= 0 && t < n_bars_ && std::isfinite(cols_[static_cast<int>(Column::close)][s * stride_ + t]);
}

void MarketPanel::valid_ranges_recompute() {
  std::atomic_ref<std::uint64_t>(id_).store(panel_id_next(), std::memory_order_relaxed);
  for (std::int32_t s = 0; s < n_symbols(); ++s) {
    const auto close = series(Column::close, s);
    std::int32_t first = 0, last = -1;
    for (std::int32_t t = 0; t < n_bars_; ++t)
      if (std::isfinite(close[static_cast<std::size_t>(t)])) {
        first = t;
        break;
      }
    for (std::int32_t t = n_bars_ - 1; t >= 0; --t)
      if (std::isfinite(close[static_cast<std::size_t>(t)])) {
        last = t;
        break;
      }
    first_[static_cast<std::size_t>(s)] = last < 0 ? 0 : first;
    last_[static_cast<std::size_t>(s)] = last;
  }
}

kernels::PanelView MarketPanel::view() const {
  kernels::PanelView v;
  v.open = cols_[0];
  v.high = cols_[1];
  v.low = cols_[2];
  v.close = cols_[3];
  v.volume = cols_[4];
  v.quote_volume = cols_[5];
  v.trades = cols_[6];
  v.first_bar = first_.data();
  v.last_bar = last_.data();
  v.n_symbols = n_symbols();
  v.n_bars = n_bars_;
  v.stride = stride_;
  v.id = std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(id_)).load(std::memory_order_relaxed);
  return v;
}

std::string panel_path(const std::string& dir) { return (std::filesystem::path(dir) / "panel.qtp").string(); }

void panel_save(const MarketPanel& panel, const std::string& path) {
  FileHeader h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.version = kVersion;
  h.header_size = kHeaderSize;
  h.n_symbols = static_cast<std::uint32_t>(panel.n_symbols());
  h.n_bars = panel.n_bars();
  h.stride = panel.stride();
  h.t0_ms = panel.t0_ms();
  h.interval_ms = panel.interval_ms();
  std::string symbols_blob;
  for (const auto& s : panel.symbols()) {
    const auto len = static_cast<std::uint16_t>(s.size());
    symbols_blob.append(reinterpret_cast<const char*>(&len), sizeof len);
    symbols_blob += s;
  }
  h.ranges_offset = kHeaderSize;
  h.symbols_offset = h.ranges_offset + 2ull * sizeof(std::int32_t) * h.n_symbols;
  h.symbols_size = symbols_blob.size();
  h.columns_offset = align_up(h.symbols_offset + h.symbols_size, 4096);
  const std::uint64_t col_bytes = static_cast<std::uint64_t>(h.n_symbols) * static_cast<std::uint64_t>(h.stride) * sizeof(float);
  h.column_bytes = align_up(col_bytes, 4096);
  h.file_size = h.columns_offset + h.column_bytes * kColumnCount;

  std::vector<std::int32_t> ranges(2ull * h.n_symbols);
  for (std::int32_t s = 0; s < panel.n_symbols(); ++s) {
    ranges[static_cast<std::size_t>(s)] = panel.first_bar(s);
    ranges[h.n_symbols + static_cast<std::size_t>(s)] = panel.last_bar(s);
  }
  // The header holds the payload's checksum, so the payload is hashed first (a fast pass over memory) and the file is
  // then written front to back through the one atomic-write helper.
  const std::vector<char> zeros(4096, 0);
  const std::uint64_t symbols_pad = h.columns_offset - (h.symbols_offset + h.symbols_size);
  XXH3_state_t* st = XXH3_createState();
  if (!st) throw std::bad_alloc();
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> state(st, XXH3_freeState);
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, ranges.data(), ranges.size() * sizeof(std::int32_t));
  XXH3_64bits_update(st, symbols_blob.data(), symbols_blob.size());
  XXH3_64bits_update(st, zeros.data(), symbols_pad);
  for (int c = 0; c < kColumnCount; ++c) {
    XXH3_64bits_update(st, panel.column_data(static_cast<Column>(c)), col_bytes);
    XXH3_64bits_update(st, zeros.data(), h.column_bytes - col_bytes);
  }
  h.payload_xxh3 = XXH3_64bits_digest(st);
  h.header_xxh3 = header_hash(h);

  AtomicFile out(path);
  std::vector<char> header(kHeaderSize, 0);
  std::memcpy(header.data(), &h, sizeof h);
  out.write(header.data(), header.size());
  out.write(ranges.data(), ranges.size() * sizeof(std::int32_t));
  out.write(symbols_blob);
  out.write(zeros.data(), symbols_pad);
  for (int c = 0; c < kColumnCount; ++c) {
    out.write(panel.column_data(static_cast<Column>(c)), col_bytes);
    out.write(zeros.data(), h.column_bytes - col_bytes);
  }
  out.commit();
}

MarketPanel panel_load(const std::string& path, bool verify_checksum) {
  auto fail = [&](const std::string& why) -> std::runtime_error {
    return std::runtime_error("panel file '" + path + "': " + why);
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail(std::string("cannot open: ") + std::strerror(errno));
  struct stat sb {};
  if (fstat(fd, &sb) != 0) {
    const int err = errno;
    ::close(fd);
    throw fail(std::string("cannot stat: ") + std::strerror(err));
  }
  if (S_ISDIR(sb.st_mode)) {
    ::close(fd);
    throw fail("is a directory, expected a panel file (a data directory holds it as panel.qtp)");
  }
  if (!S_ISREG(sb.st_mode)) {
    ::close(fd);
    throw fail("is not a regular file, expected a panel file");
  }
  const auto size = static_cast<std::uint64_t>(sb.st_size);
  if (size < kHeaderSize) {
    ::close(fd);
    throw fail("truncated: " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kHeaderSize) + "-byte header");
  }
  void* addr = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (addr == MAP_FAILED) throw fail(std::string("cannot map into memory: ") + std::strerror(errno));
  auto mapping = std::make_unique<MarketPanel::Mapping>();
  mapping->addr = addr;
  mapping->size = size;
  const auto* base = static_cast<const unsigned char*>(addr);

  FileHeader h;
  std::memcpy(&h, base, sizeof h);
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) throw fail("not a qtos panel file (bad magic)");
  if (h.version != kVersion)
    throw fail("format version " + std::to_string(h.version) + ", this qtos reads version " + std::to_string(kVersion));
  if (header_hash(h) != h.header_xxh3) throw fail("header checksum mismatch (file is corrupt)");
  if (h.file_size != size)
    throw fail("truncated or padded: header says " + std::to_string(h.file_size) + " bytes, file has " + std::to_string(size));
  const std::uint64_t col_bytes = static_cast<std::uint64_t>(h.n_symbols) * static_cast<std::uint64_t>(h.stride) * sizeof(float);
  if (h.n_bars < 0 || h.stride < h.n_bars || h.stride % kStrideAlign != 0 || h.interval_ms <= 0 || h.column_bytes < col_bytes ||
      h.columns_offset % 4096 != 0 || h.columns_offset + h.column_bytes * kColumnCount != h.file_size ||
      h.symbols_offset + h.symbols_size > h.columns_offset)
    throw fail("inconsistent header (file is corrupt)");
  if (verify_checksum && XXH3_64bits(base + kHeaderSize, size - kHeaderSize) != h.payload_xxh3)
    throw fail("payload checksum mismatch (file is corrupt)");

  MarketPanel p;
  p.id_ = panel_id_next();
  p.n_bars_ = h.n_bars;
  p.stride_ = h.stride;
  p.t0_ms_ = h.t0_ms;
  p.interval_ms_ = h.interval_ms;
  const auto* ranges = reinterpret_cast<const std::int32_t*>(base + h.ranges_offset);
  p.first_.assign(ranges, ranges + h.n_symbols);
  p.last_.assign(ranges + h.n_symbols, ranges + 2ull * h.n_symbols);
  std::uint64_t off = h.symbols_offset;
  const std::uint64_t end = h.symbols_offset + h.symbols_size;
  for (std::uint32_t i = 0; i < h.n_symbols; ++i) {
    std::uint16_t len = 0;
    if (off + sizeof len > end) throw fail("symbol table truncated (file is corrupt)");
    std::memcpy(&len, base + off, sizeof len);
    off += sizeof len;
    if (off + len > end || len == 0) throw fail("symbol table truncated (file is corrupt)");
    p.symbols_.emplace_back(reinterpret_cast<const char*>(base + off), len);
    off += len;
  }
  for (std::uint32_t i = 0; i < h.n_symbols; ++i)
    if (p.first_[i] < 0 || p.last_[i] < -1 || p.last_[i] >= h.n_bars) throw fail("bad valid range of symbol " + p.symbols_[i]);
  for (int c = 0; c < kColumnCount; ++c)
    p.cols_[c] = reinterpret_cast<const float*>(base + h.columns_offset + h.column_bytes * static_cast<std::uint64_t>(c));
  madvise(addr, size, MADV_WILLNEED);
  p.mapping_ = std::move(mapping);
  return p;
}

}  // namespace qtos
