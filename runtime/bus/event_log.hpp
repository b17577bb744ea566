#pragma once
/// @file The binary, append-only event log: every event published on a bus can be recorded, replayed in order
/// (driving a SimClock so that timers fire at their simulated times) and dumped as text (`qtos events dump`).
///
/// Format (little-endian): a 16-byte file header "QTOSEVT\0", u32 format version (2), u32 reserved; then records
/// of u32 body length, u32 XXH32 of the body, and the body: u16 event type, u64 id, i64 timestamp (Unix ns),
/// u8 source length + source bytes, then the payload fields in declaration order (numbers as their bytes, enums as
/// their underlying integer, strings as u32 length + bytes, inline strings as u8 length + bytes, lists as u32
/// count + elements). A record cut short at the end of the file (a crash mid-write) is a torn tail, not an error.
///
/// Versions: 2 added MarketBarClosed's quote_volume and trades (after volume) and the UniverseSuggested type (18); 3
/// added the SubsystemDecided type (19).
/// Readers decode version-1 logs too (their bars get quote_volume NaN and trades -1: unknown); writers append only
/// to a log of the current version.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "runtime/bus/event_bus.hpp"
#include "runtime/bus/events.hpp"
#include "runtime/clock/clock.hpp"
#include "runtime/util/result.hpp"

namespace qtos {

inline constexpr std::uint32_t kEventLogVersion = 3;  ///< format version written in the file header
inline constexpr std::uint32_t kEventLogOldestVersion = 1;  ///< the oldest format version readers still decode

/// The body of one record (type, header, payload) of `event`, in the current format version.
std::string event_encode(const AnyEvent& event);
/// Decodes a record body written in format `version` (kEventLogOldestVersion..kEventLogVersion); an error names
/// what is malformed. Fields an older version lacks keep their defaults (for MarketBarClosed: unknown).
Result<AnyEvent> event_decode(std::string_view body, std::uint32_t version = kEventLogVersion);
/// The payload of `event` as `name=value` pairs separated by spaces (strings quoted).
std::string event_format_fields(const AnyEvent& event);
/// One line: id, ISO time, type, topic, source and the payload fields.
std::string event_format_line(const AnyEvent& event);
/// The payload of `event` as one JSON object: field names as keys, enums by name, symbols as strings, lists as arrays,
/// records as objects, a non-finite number (an unknown value) as null. The API's /events and its stream.
boost::json::object event_json(const AnyEvent& event);

/// Appends events to a log file. Not thread-safe: use it on the bus owner thread.
class EventLogWriter {
 public:
  /// Opens `path` for appending, writing the file header when the file is new. An existing file must start with a
  /// valid header of the current version (records of two layouts never share a file); a torn last record (from a
  /// crash) is cut off with a warning. Throws std::runtime_error naming the path on any I/O error, a file that is
  /// not an event log, or one of another format version.
  explicit EventLogWriter(std::string path);
  EventLogWriter(const EventLogWriter&) = delete;
  EventLogWriter& operator=(const EventLogWriter&) = delete;
  /// Flushes and closes.
  ~EventLogWriter();
  /// Appends one event (buffered; see flush()).
  void append(const AnyEvent& event);
  /// Writes buffered records to the file; `durable` also fsyncs. Throws std::runtime_error naming the path on error.
  void flush(bool durable = false);
  /// Records appended through this writer.
  std::uint64_t records() const { return records_; }
  /// Bytes in the file (what flush() has written). Throws std::runtime_error naming the path when it cannot be read.
  std::uint64_t file_bytes() const;
  /// The file path.
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  std::uint64_t records_ = 0;
};

/// Cuts the log at `path` back to its first `bytes` bytes (a restarted run drops what it recorded after its last
/// checkpoint: those bar times run again). No effect when the file is not longer. Throws std::runtime_error naming the
/// path when `bytes` is inside the header, does not end a record, or the file cannot be cut.
void event_log_truncate(const std::string& path, std::uint64_t bytes);

/// Reads a log file record by record.
class EventLogReader {
 public:
  /// Opens `path`; throws std::runtime_error naming the path when it cannot be read, has no valid header, or has a
  /// format version outside kEventLogOldestVersion..kEventLogVersion (the message names the version).
  explicit EventLogReader(std::string path);
  EventLogReader(const EventLogReader&) = delete;
  EventLogReader& operator=(const EventLogReader&) = delete;
  ~EventLogReader();
  /// The next event; nullopt at the end (clean, or a torn last record: see torn_tail()). An error names the byte
  /// offset of a record whose checksum or contents are wrong.
  Result<std::optional<AnyEvent>> next();
  /// Bytes of an incomplete last record that were ignored (0 for a clean end).
  std::uint64_t torn_tail() const { return torn_tail_; }
  /// Offset of the next record.
  std::uint64_t offset() const { return offset_; }
  /// The file's format version (older versions are decoded into the current event structs).
  std::uint32_t version() const { return version_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::uint32_t version_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t file_size_ = 0;
  std::uint64_t torn_tail_ = 0;
  std::string body_;
};

/// Records every event of a bus into a log (a `#` subscription). Owner thread.
class EventRecorder {
 public:
  /// Starts recording `bus` into `path` (see EventLogWriter). Buffered records are written to the file every
  /// `flush_period` of bus-clock time (0: only when the buffer fills, on flush() and on destruction), so a crashed
  /// process loses at most that much of its log.
  EventRecorder(EventBus& bus, std::string path, TimeNs flush_period = kNsPerSecond);
  /// Writes buffered records (durable: fsync too).
  void flush(bool durable = false) { writer_.flush(durable); }
  /// Events recorded so far.
  std::uint64_t records() const { return writer_.records(); }
  /// Bytes in the file (what has been flushed).
  std::uint64_t file_bytes() const { return writer_.file_bytes(); }

 private:
  EventLogWriter writer_;
  Subscription sub_;
  Timer flush_timer_;
};

/// What a replay did.
struct ReplayStats {
  std::uint64_t events = 0;        ///< events delivered to the bus
  std::uint64_t skipped = 0;       ///< events the filter left out
  std::uint64_t timers_fired = 0;  ///< timers the SimClock fired on the way
  std::uint64_t torn_tail = 0;     ///< bytes of an incomplete last record
};

/// Replays `path` into `bus` in file order with each event's recorded header. When `clock` is given it is
/// advanced to each event's timestamp first (never backwards), so periodic jobs fire at their simulated times.
/// `filter` (optional) chooses the event types to deliver. Throws std::runtime_error when the file cannot be
/// opened; returns an error for a corrupt record (events before it have been delivered).
Result<ReplayStats> event_log_replay(const std::string& path, EventBus& bus, SimClock* clock = nullptr,
                                     const std::function<bool(EventType)>& filter = {});

}  // namespace qtos
