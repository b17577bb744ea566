#include "runtime/util/progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace qtos {

Progress::Progress(std::string label, std::uint64_t total, std::FILE* out)
    : label_(std::move(label)), total_(total), out_(out), tty_(isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_ - std::chrono::hours(1)) {}

Progress::~Progress() {
  if (!finished_ && tty_ && done_ > 0) std::fputc('\n', out_);  // leave the cursor on a clean line
}

void Progress::update(std::uint64_t done, const std::string& status) {
  done_ = std::min(done, total_);
  status_ = status;
  const auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  } else {
    const int decile = total_ ? static_cast<int>(done_ * 10 / total_) : 0;
    if (decile == last_decile_ && now - last_draw_ < std::chrono::seconds(5)) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(false);
}

void Progress::stop(const std::string& status) {
  if (finished_) return;
  status_ = status;
  draw(true);
  finished_ = true;
}

void Progress::finish(const std::string& status) {
  if (finished_) return;
  done_ = total_;
  if (!status.empty()) status_ = status;
  // In plain mode the 100% line may already be out; do not repeat it.
  if (tty_ || last_drawn_done_ != done_ || !status.empty()) draw(true);
  finished_ = true;
}

void Progress::draw(bool final_line) {
  last_drawn_done_ = done_;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double frac = total_ ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    constexpr int width = 30;
    const int filled = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, '.');
    std::fprintf(out_, "\r%s [%s] %3.0f%% %6.1fs %s\x1b[K%s", label_.c_str(), bar.c_str(), frac * 100.0, secs,
                 status_.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(out_, "%s: %llu/%llu (%.0f%%) %.1fs %s\n", label_.c_str(), static_cast<unsigned long long>(done_),
                 static_cast<unsigned long long>(total_), frac * 100.0, secs, status_.c_str());
  }
  std::fflush(out_);
}

}  // namespace qtos
