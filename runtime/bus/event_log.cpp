#include "runtime/bus/event_log.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include <spdlog/spdlog.h>
#include <xxhash.h>

namespace qtos {
namespace {

static_assert(std::endian::native == std::endian::little, "the event log format is little-endian");

constexpr char kMagic[8] = {'Q', 'T', 'O', 'S', 'E', 'V', 'T', '\0'};
constexpr std::size_t kFileHeader = 16;
constexpr std::size_t kRecordHeader = 8;
constexpr std::uint32_t kMaxBody = 64u << 20;

template <class T>
struct IsFixedString : std::false_type {};
template <std::size_t N>
struct IsFixedString<FixedString<N>> : std::true_type {};
template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {};

struct Encoder {
  std::string& out;
  template <class T>
  void put(const T& v) {
    if constexpr (std::is_enum_v<T>) {
      put(static_cast<std::underlying_type_t<T>>(v));
    } else if constexpr (std::is_same_v<T, bool>) {
      out.push_back(v ? '\1' : '\0');
    } else if constexpr (std::is_arithmetic_v<T>) {
      char b[sizeof(T)];
      std::memcpy(b, &v, sizeof(T));
      out.append(b, sizeof(T));
    } else if constexpr (std::is_same_v<T, std::string>) {
      put(static_cast<std::uint32_t>(v.size()));
      out.append(v);
    } else if constexpr (IsFixedString<T>::value) {
      out.push_back(static_cast<char>(v.size()));
      out.append(v.view());
    } else if constexpr (IsVector<T>::value) {
      put(static_cast<std::uint32_t>(v.size()));
      for (const auto& x : v) put(x);
    } else {
      std::apply([this](const auto&... f) { (put(f), ...); }, v.fields());
    }
  }
};

struct Decoder {
  std::string_view in;
  std::size_t pos = 0;
  std::string error;  // first problem found

  bool fail(const std::string& why) {
    if (error.empty()) error = why + " at body byte " + std::to_string(pos);
    return false;
  }
  bool take(void* dst, std::size_t n) {
    if (in.size() - pos < n) return fail("record body too short");
    std::memcpy(dst, in.data() + pos, n);
    pos += n;
    return true;
  }
  template <class T>
  bool get(T& v) {
    if constexpr (std::is_enum_v<T>) {
      std::underlying_type_t<T> raw{};
      if (!get(raw)) return false;
      if (static_cast<std::size_t>(raw) >= EnumNames<T>::kCount)
        return fail("enum value " + std::to_string(static_cast<long long>(raw)) + " out of range");
      v = static_cast<T>(raw);
      return true;
    } else if constexpr (std::is_same_v<T, bool>) {
      unsigned char b = 0;
      if (!take(&b, 1)) return false;
      if (b > 1) return fail("boolean byte " + std::to_string(b) + " is not 0 or 1");
      v = b != 0;
      return true;
    } else if constexpr (std::is_arithmetic_v<T>) {
      return take(&v, sizeof(T));
    } else if constexpr (std::is_same_v<T, std::string>) {
      std::uint32_t n = 0;
      if (!get(n)) return false;
      if (in.size() - pos < n) return fail("string of " + std::to_string(n) + " bytes runs past the record");
      v.assign(in.data() + pos, n);
      pos += n;
      return true;
    } else if constexpr (IsFixedString<T>::value) {
      unsigned char n = 0;
      if (!take(&n, 1)) return false;
      if (n > T::kCapacity) return fail("inline string of " + std::to_string(n) + " bytes exceeds its capacity");
      if (in.size() - pos < n) return fail("inline string runs past the record");
      v = T(std::string_view(in.data() + pos, n));
      pos += n;
      return true;
    } else if constexpr (IsVector<T>::value) {
      std::uint32_t n = 0;
      if (!get(n)) return false;
      if (n > in.size() - pos) return fail("list of " + std::to_string(n) + " elements runs past the record");
      v.clear();
      v.resize(n);
      for (auto& x : v)
        if (!get(x)) return false;
      return true;
    } else {
      return std::apply([this](auto&... f) { return (get(f) && ...); }, v.fields());
    }
  }
};

std::vector<std::string_view> field_names(std::string_view list) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start < list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view name = list.substr(start, comma - start);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    out.push_back(name);
    start = comma + 1;
  }
  return out;
}

void quote(std::string& out, std::string_view s) {
  out.push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned char>(c));
      out += b;
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
}

struct Formatter {
  std::string& out;
  template <class T>
  void value(const T& v) {
    if constexpr (std::is_enum_v<T>) {
      out += enum_name(v);
    } else if constexpr (std::is_same_v<T, bool>) {
      out += v ? "true" : "false";
    } else if constexpr (std::is_floating_point_v<T>) {
      char b[32];
      std::snprintf(b, sizeof b, "%.10g", static_cast<double>(v));
      out += b;
    } else if constexpr (std::is_arithmetic_v<T>) {
      out += std::to_string(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      quote(out, v);
    } else if constexpr (IsFixedString<T>::value) {
      out += v.view();
    } else if constexpr (IsVector<T>::value) {
      out.push_back('[');
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out.push_back(' ');
        value(v[i]);
      }
      out.push_back(']');
    } else {
      out.push_back('{');
      record(v);
      out.push_back('}');
    }
  }
  template <class R>
  void record(const R& r) {
    const auto names = field_names(R::kFieldNames);
    std::size_t i = 0;
    std::apply(
        [&](const auto&... f) {
          ((out += (i ? " " : ""), out += names[i], out.push_back('='), value(f), ++i), ...);
        },
        r.fields());
  }
};

// ---- older format versions --------------------------------------------------------------------------------------
// Version 1: 18 event types (no UniverseSuggested); MarketBarClosed ended at `volume` (no quote_volume, trades).

template <class E>
constexpr std::size_t kFieldCount = std::tuple_size_v<decltype(std::declval<const E&>().fields())>;

/// Payload fields of E present in a version-1 record: a prefix of the current fields (fields are only appended).
template <class E>
constexpr std::size_t kV1FieldCount = kFieldCount<E>;
template <>
constexpr std::size_t kV1FieldCount<MarketBarClosed> = 8;
static_assert(kFieldCount<MarketBarClosed> == 10, "MarketBarClosed changed: bump kEventLogVersion and describe the old layouts");

std::size_t event_type_count(std::uint32_t version) { return version == 1 ? 18 : version == 2 ? 19 : kEventTypeCount; }

template <class E>
bool decode_fields(Decoder& d, E& e, std::uint32_t version) {
  auto f = e.fields();
  auto prefix = [&]<std::size_t... I>(std::index_sequence<I...>) { return (d.get(std::get<I>(f)) && ...); };
  if (version == 1) return prefix(std::make_index_sequence<kV1FieldCount<E>>{});
  return prefix(std::make_index_sequence<kFieldCount<E>>{});
}

template <std::size_t... I>
bool decode_payload(Decoder& d, std::size_t type, std::uint32_t version, AnyEvent& out, const EventHeader& header,
                    std::index_sequence<I...>) {
  bool ok = false;
  ((type == I ? (void)([&] {
     std::variant_alternative_t<I, AnyEvent> e;
     e.header = header;
     ok = decode_fields(d, e, version);
     if (ok) out = std::move(e);
   }()) : (void)0), ...);
  return ok;
}

[[noreturn]] void io_fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("event log '" + path + "': " + what + ": " + std::strerror(errno));
}

void write_all(int fd, const char* data, std::size_t n, const std::string& path) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      io_fail(path, "write failed");
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::string file_header() {
  std::string h(kMagic, sizeof kMagic);
  Encoder{h}.put(kEventLogVersion);
  Encoder{h}.put(std::uint32_t{0});
  return h;
}

// Checks the 16-byte header of an open log and reads its version; returns an empty string or what is wrong.
std::string check_header(const char* buf, std::size_t n, std::uint32_t& version) {
  if (n < kFileHeader) return "is " + std::to_string(n) + " bytes, shorter than the 16-byte event log header";
  if (std::memcmp(buf, kMagic, sizeof kMagic) != 0) return "does not start with the event log magic 'QTOSEVT'";
  std::memcpy(&version, buf + 8, 4);
  if (version < kEventLogOldestVersion || version > kEventLogVersion)
    return "has format version " + std::to_string(version) + "; this build reads versions " +
           std::to_string(kEventLogOldestVersion) + " to " + std::to_string(kEventLogVersion);
  return {};
}

}  // namespace

std::string event_encode(const AnyEvent& event) {
  std::string out;
  out.reserve(128);
  Encoder enc{out};
  enc.put(static_cast<std::uint16_t>(event.index()));
  std::visit(
      [&](const auto& e) {
        enc.put(e.header.id);
        enc.put(e.header.ts);
        enc.put(e.header.source);
        enc.put(e);
      },
      event);
  return out;
}

Result<AnyEvent> event_decode(std::string_view body, std::uint32_t version) {
  if (version < kEventLogOldestVersion || version > kEventLogVersion)
    return Error{ErrorCode::unsupported, "format version " + std::to_string(version) + " is not one this build reads (" +
                                    std::to_string(kEventLogOldestVersion) + " to " + std::to_string(kEventLogVersion) + ")"};
  Decoder d{body};
  std::uint16_t type = 0;
  EventHeader header;
  if (!d.get(type) || !d.get(header.id) || !d.get(header.ts) || !d.get(header.source))
    return Error{ErrorCode::corrupt, "event header: " + d.error};
  if (type >= event_type_count(version))
    return Error{ErrorCode::corrupt, "unknown event type " + std::to_string(type) + " in a version-" + std::to_string(version) + " log"};
  AnyEvent out;
  if (!decode_payload(d, type, version, out, header, std::make_index_sequence<kEventTypeCount>{}))
    return Error{ErrorCode::corrupt, std::string(event_type_name(static_cast<EventType>(type))) + " payload: " + d.error};
  if (d.pos != body.size())
    return Error{ErrorCode::corrupt, std::to_string(body.size() - d.pos) + " unexpected bytes after the " +
                                std::string(event_type_name(static_cast<EventType>(type))) + " payload"};
  return out;
}

std::string event_format_fields(const AnyEvent& event) {
  std::string out;
  std::visit([&](const auto& e) { Formatter{out}.record(e); }, event);
  return out;
}

namespace {

struct JsonFormatter {
  template <class T>
  static boost::json::value value(const T& v) {
    if constexpr (std::is_enum_v<T>) {
      return boost::json::value(std::string(enum_name(v)));
    } else if constexpr (std::is_same_v<T, bool>) {
      return boost::json::value(v);
    } else if constexpr (std::is_floating_point_v<T>) {
      return std::isfinite(v) ? boost::json::value(static_cast<double>(v)) : boost::json::value(nullptr);
    } else if constexpr (std::is_arithmetic_v<T>) {
      return boost::json::value(v);
    } else if constexpr (std::is_same_v<T, std::string>) {
      return boost::json::value(v);
    } else if constexpr (IsFixedString<T>::value) {
      return boost::json::value(std::string(v.view()));
    } else if constexpr (IsVector<T>::value) {
      boost::json::array a;
      a.reserve(v.size());
      for (const auto& x : v) a.push_back(value(x));
      return a;
    } else {
      return record(v);
    }
  }
  template <class R>
  static boost::json::object record(const R& r) {
    boost::json::object o;
    const auto names = field_names(R::kFieldNames);
    std::size_t i = 0;
    std::apply([&](const auto&... f) { ((o[names[i]] = value(f), ++i), ...); }, r.fields());
    return o;
  }
};

}  // namespace

boost::json::object event_json(const AnyEvent& event) {
  return std::visit([](const auto& e) { return JsonFormatter::record(e); }, event);
}

std::string event_format_line(const AnyEvent& event) {
  const EventHeader& h = event_header(event);
  const EventType type = event_type(event);
  std::string out = "#" + std::to_string(h.id) + " " + time_format(h.ts) + " " + std::string(event_type_name(type)) +
                    " topic=" + std::string(event_topic(type)) + " source=" + h.source.str();
  const std::string fields = event_format_fields(event);
  if (!fields.empty()) out += " " + fields;
  return out;
}

// ---- writer -----------------------------------------------------------------------------------------------------

EventLogWriter::EventLogWriter(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) io_fail(path_, "cannot open for appending");
  struct stat st {};
  if (::fstat(fd_, &st) != 0) io_fail(path_, "cannot stat");
  if (st.st_size == 0) {
    const std::string h = file_header();
    write_all(fd_, h.data(), h.size(), path_);
  } else {
    // Validate the existing log and cut off a torn last record so new records follow a complete one.
    ::close(fd_);
    fd_ = -1;
    std::uint64_t good_end = kFileHeader;
    {
      EventLogReader reader(path_);
      if (reader.version() != kEventLogVersion)
        throw std::runtime_error("event log '" + path_ + "' has format version " + std::to_string(reader.version()) +
                                 "; this build appends only to version-" + std::to_string(kEventLogVersion) +
                                 " logs (it still reads and replays this one): record into a new file");
      for (;;) {
        auto r = reader.next();
        if (!r.ok()) throw std::runtime_error("event log '" + path_ + "': cannot append after a corrupt record: " + r.error().message);
        if (!r.value()) break;
        good_end = reader.offset();
      }
      if (reader.torn_tail() > 0) {
        spdlog::warn("event log '{}': cutting off an incomplete last record of {} bytes at offset {}", path_,
                     reader.torn_tail(), good_end);
        if (::truncate(path_.c_str(), static_cast<off_t>(good_end)) != 0) io_fail(path_, "cannot cut off the torn tail");
      }
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) io_fail(path_, "cannot reopen for appending");
  }
  buffer_.reserve(1 << 16);
}

EventLogWriter::~EventLogWriter() {
  if (fd_ < 0) return;
  try {
    flush();
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
  }
  ::close(fd_);
}

void EventLogWriter::append(const AnyEvent& event) {
  const std::string body = event_encode(event);
  Encoder enc{buffer_};
  enc.put(static_cast<std::uint32_t>(body.size()));
  enc.put(static_cast<std::uint32_t>(XXH32(body.data(), body.size(), 0)));
  buffer_ += body;
  ++records_;
  if (buffer_.size() >= (1 << 16)) flush();
}

void EventLogWriter::flush(bool durable) {
  if (!buffer_.empty()) {
    write_all(fd_, buffer_.data(), buffer_.size(), path_);
    buffer_.clear();
  }
  if (durable && ::fsync(fd_) != 0) io_fail(path_, "fsync failed");
}

std::uint64_t EventLogWriter::file_bytes() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) io_fail(path_, "cannot stat");
  return static_cast<std::uint64_t>(st.st_size);
}

void event_log_truncate(const std::string& path, std::uint64_t bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) io_fail(path, "cannot stat");
  if (static_cast<std::uint64_t>(st.st_size) <= bytes) return;
  if (bytes < kFileHeader) throw std::runtime_error("event log '" + path + "': cannot cut at byte " + std::to_string(bytes) + ", inside the header");
  {
    // The cut must fall on a record boundary: walk the records up to it.
    EventLogReader reader(path);
    while (reader.offset() < bytes) {
      auto r = reader.next();
      if (!r.ok()) throw std::runtime_error("event log '" + path + "': " + r.error().message);
      if (!r.value()) break;
    }
    if (reader.offset() != bytes)
      throw std::runtime_error("event log '" + path + "': byte " + std::to_string(bytes) + " does not end a record (the nearest ends at " +
                               std::to_string(reader.offset()) + ")");
  }
  if (::truncate(path.c_str(), static_cast<off_t>(bytes)) != 0) io_fail(path, "cannot cut the log back");
}

// ---- reader -----------------------------------------------------------------------------------------------------

EventLogReader::EventLogReader(std::string path) : path_(std::move(path)) {
  file_ = std::fopen(path_.c_str(), "rb");
  if (!file_) io_fail(path_, "cannot open for reading");
  struct stat st {};
  if (::fstat(::fileno(file_), &st) != 0) io_fail(path_, "cannot stat");
  if (S_ISDIR(st.st_mode)) {
    std::fclose(file_);
    file_ = nullptr;
    throw std::runtime_error("event log '" + path_ + "' is a directory, not an event log file");
  }
  file_size_ = static_cast<std::uint64_t>(st.st_size);
  char buf[kFileHeader];
  const std::size_t n = std::fread(buf, 1, kFileHeader, file_);
  if (const std::string why = check_header(buf, n, version_); !why.empty()) {
    std::fclose(file_);
    file_ = nullptr;
    throw std::runtime_error("event log '" + path_ + "' " + why);
  }
  offset_ = kFileHeader;
}

EventLogReader::~EventLogReader() {
  if (file_) std::fclose(file_);
}

Result<std::optional<AnyEvent>> EventLogReader::next() {
  if (offset_ >= file_size_) return std::optional<AnyEvent>{};
  const std::uint64_t left = file_size_ - offset_;
  char rh[kRecordHeader];
  if (left < kRecordHeader || std::fread(rh, 1, kRecordHeader, file_) != kRecordHeader) {
    torn_tail_ = left;
    return std::optional<AnyEvent>{};
  }
  std::uint32_t len = 0, sum = 0;
  std::memcpy(&len, rh, 4);
  std::memcpy(&sum, rh + 4, 4);
  if (len > kMaxBody)
    return Error{ErrorCode::corrupt, "event log '" + path_ + "': record at offset " + std::to_string(offset_) + " claims " +
                                std::to_string(len) + " bytes (more than the 64 MiB limit)"};
  if (left - kRecordHeader < len) {
    torn_tail_ = left;
    return std::optional<AnyEvent>{};
  }
  body_.resize(len);
  if (std::fread(body_.data(), 1, len, file_) != len) {
    torn_tail_ = left;
    return std::optional<AnyEvent>{};
  }
  if (static_cast<std::uint32_t>(XXH32(body_.data(), body_.size(), 0)) != sum)
    return Error{ErrorCode::corrupt, "event log '" + path_ + "': checksum mismatch in the record at offset " + std::to_string(offset_)};
  auto decoded = event_decode(body_, version_);
  if (!decoded.ok())
    return Error{ErrorCode::corrupt, "event log '" + path_ + "': record at offset " + std::to_string(offset_) + ": " +
                                decoded.error().message};
  offset_ += kRecordHeader + len;
  return std::optional<AnyEvent>(std::move(decoded).value());
}

// ---- recorder and replay ----------------------------------------------------------------------------------------

EventRecorder::EventRecorder(EventBus& bus, std::string path, TimeNs flush_period)
    : writer_(std::move(path)),
      sub_(bus.subscribe_topics("event-recorder", "#", [this](const EventRef& e) { writer_.append(e.to_any()); })) {
  if (flush_period < 0)
    throw std::invalid_argument("EventRecorder: flush period " + std::to_string(flush_period) + " ns is negative");
  if (flush_period > 0) flush_timer_ = bus.clock().schedule_every(flush_period, [this](TimeNs) { writer_.flush(); });
}

Result<ReplayStats> event_log_replay(const std::string& path, EventBus& bus, SimClock* clock,
                                     const std::function<bool(EventType)>& filter) {
  EventLogReader reader(path);
  ReplayStats stats;
  for (;;) {
    auto r = reader.next();
    if (!r.ok()) return r.error();
    if (!r.value()) break;
    AnyEvent event = std::move(*std::move(r).value());
    if (filter && !filter(event_type(event))) {
      ++stats.skipped;
      continue;
    }
    if (clock) {
      const TimeNs ts = event_header(event).ts;
      if (ts > clock->now()) stats.timers_fired += clock->advance_to(ts);
    }
    bus.publish_recorded(std::move(event));
    ++stats.events;
  }
  stats.torn_tail = reader.torn_tail();
  return stats;
}

}  // namespace qtos
