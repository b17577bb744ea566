#include "api/http/dashboard.hpp"

namespace qtos::api {

namespace {
#include "api/http/dashboard_html.inc"  // kDashboardHtml, generated from api/http/assets/dashboard.html
}  // namespace

std::string_view dashboard_html() {
  return std::string_view(reinterpret_cast<const char*>(kDashboardHtml), sizeof kDashboardHtml);
}

}  // namespace qtos::api
