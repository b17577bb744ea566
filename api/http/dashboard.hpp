#pragma once
/// @file The dashboard page that GET / serves: api/http/assets/dashboard.html, compiled into the binary (see
/// api/CMakeLists.txt). One self-contained HTML file: inline CSS and JS, inline SVG charts, nothing loaded from
/// anywhere; it reads the GET routes of the API and the event stream, and drives the controls with the API token.

#include <string_view>

namespace qtos::api {

/// The page's bytes (UTF-8 HTML); static storage, valid for the life of the program.
std::string_view dashboard_html();

/// The Content-Security-Policy GET / is served with: scripts and styles only inline, connections only to the
/// server itself, no frames (the brake button cannot be clickjacked), no forms, no base URL, images only data:.
inline constexpr std::string_view kDashboardCsp =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace qtos::api
