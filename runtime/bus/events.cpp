#include "runtime/bus/events.hpp"

#include <array>

namespace qtos {
namespace {

struct TypeInfo {
  std::string_view topic;
  std::string_view name;
  bool droppable;
};

template <std::size_t... I>
constexpr std::array<TypeInfo, kEventTypeCount> make_info(std::index_sequence<I...>) {
  return {TypeInfo{std::variant_alternative_t<I, AnyEvent>::kTopic, {}, std::variant_alternative_t<I, AnyEvent>::kDroppable}...};
}


constexpr auto kInfo = make_info(std::make_index_sequence<kEventTypeCount>{});

std::size_t checked(EventType type) {
  const auto i = static_cast<std::size_t>(type);
  if (i >= kEventTypeCount) throw std::out_of_range("event type " + std::to_string(i) + " is not a known EventType");
  return i;
}

}  // namespace

std::string_view event_topic(EventType type) { return kInfo[checked(type)].topic; }
std::string_view event_type_name(EventType type) { return enum_name(static_cast<EventType>(checked(type))); }
bool event_droppable(EventType type) { return kInfo[checked(type)].droppable; }

}  // namespace qtos
