#pragma once
/// @file qtos::parallel_for: every data-parallel loop of qtos goes through here. It is tbb::parallel_for, plus, in a
/// ThreadSanitizer build, the happens-before edges that Debian's uninstrumented oneTBB hides from TSan: what the
/// caller wrote before the loop is visible to every chunk, and what the chunks wrote is visible after it. Without
/// them TSan reports the loop's own hand-off (a vector read by a worker, freed by the caller after the join) as a race.

#include <tbb/parallel_for.h>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define QTOS_TSAN_ANNOTATE 1
#endif

namespace qtos {

/// tbb::parallel_for over a TBB range (blocked_range, blocked_range2d, ...).
template <class Range, class Body>
void parallel_for(const Range& range, const Body& body) {
#if defined(QTOS_TSAN_ANNOTATE)
  char before = 0, after = 0;  // TSan sync objects: only their addresses matter
  __tsan_release(&before);
  tbb::parallel_for(range, [&](const Range& r) {
    __tsan_acquire(&before);
    body(r);
    __tsan_release(&after);
  });
  __tsan_acquire(&after);
#else
  tbb::parallel_for(range, body);
#endif
}

/// tbb::parallel_for over the indices [first, last).
template <class Index, class Body>
void parallel_for(Index first, Index last, const Body& body) {
#if defined(QTOS_TSAN_ANNOTATE)
  char before = 0, after = 0;
  __tsan_release(&before);
  tbb::parallel_for(first, last, [&](Index i) {
    __tsan_acquire(&before);
    body(i);
    __tsan_release(&after);
  });
  __tsan_acquire(&after);
#else
  tbb::parallel_for(first, last, body);
#endif
}

}  // namespace qtos
