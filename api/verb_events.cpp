// `qtos events dump FILE`: prints a recorded event log, one event per line, in file order.
#include <cstdio>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "api/cli_checks.hpp"
#include "api/verbs.hpp"
#include "runtime/bus/event_log.hpp"

namespace qtos::api {
namespace {

struct DumpOptions {
  std::string file;
  std::vector<std::string> types;
  std::vector<std::string> topics;
  std::uint64_t limit = 0;
};

void dump(const DumpOptions& o) {
  std::set<EventType> wanted;
  for (const auto& name : o.types) {
    bool found = false;
    for (std::size_t i = 0; i < kEventTypeCount; ++i)
      if (event_type_name(static_cast<EventType>(i)) == name) {
        wanted.insert(static_cast<EventType>(i));
        found = true;
      }
    if (!found) {
      std::string known;
      for (std::size_t i = 0; i < kEventTypeCount; ++i)
        known += (i ? ", " : "") + std::string(event_type_name(static_cast<EventType>(i)));
      throw std::invalid_argument("--type '" + name + "' is not an event type; types are: " + known);
    }
  }
  for (const auto& pattern : o.topics)
    for (std::size_t i = 0; i < kEventTypeCount; ++i)
      if (topic_matches(pattern, event_topic(static_cast<EventType>(i)))) wanted.insert(static_cast<EventType>(i));
  const bool filtered = !o.types.empty() || !o.topics.empty();
  EventLogReader reader(o.file);
  std::uint64_t total = 0, shown = 0;
  for (;;) {
    auto r = reader.next();
    if (!r.ok()) {
      std::fflush(stdout);
      throw std::runtime_error(r.error().message + " (after " + std::to_string(total) + " good records)");
    }
    if (!r.value()) break;
    ++total;
    const AnyEvent& event = *r.value();
    if (filtered && !wanted.count(event_type(event))) continue;
    if (o.limit && shown >= o.limit) continue;
    std::printf("%s\n", event_format_line(event).c_str());
    ++shown;
  }
  std::printf("# %llu events in %s, %llu shown", static_cast<unsigned long long>(total), o.file.c_str(),
              static_cast<unsigned long long>(shown));
  if (reader.version() != kEventLogVersion)
    std::printf("; format version %u (an older log: bar quote_volume and trades unknown, shown as nan and -1)",
                static_cast<unsigned>(reader.version()));
  if (reader.torn_tail()) std::printf("; an incomplete last record of %llu bytes was ignored",
                                      static_cast<unsigned long long>(reader.torn_tail()));
  std::printf("\n");
}

}  // namespace

void verbs_events_register(CLI::App& app, CliContext& /*ctx*/) {
  auto* events = app.add_subcommand("events", "inspect recorded event logs");
  events->require_subcommand(1);
  auto* d = events->add_subcommand("dump", "print every event of a log file, in order, one per line");
  auto o = std::make_shared<DumpOptions>();
  d->add_option("FILE", o->file, "event log written by the bus recorder")->required();
  d->add_option("--type", o->types, "only events of this type, e.g. OrderDenied (repeatable)");
  d->add_option("--topic", o->topics, "only events whose topic matches this pattern, e.g. 'orders.*' (repeatable)");
  d->add_option("--limit", o->limit, "print at most this many events (0: all)")->check(integer_range(0));
  d->callback([o] { dump(*o); });
}

}  // namespace qtos::api
