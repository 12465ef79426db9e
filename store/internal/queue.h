// The one place the store includes moodycamel's ConcurrentQueue (Debian libconcurrentqueue-dev:
// header-only, no CMake config). Everything in store/ uses these aliases, so swapping the queue
// touches this file only. Not installed: public headers never include it.
#pragma once

#include <concurrentqueue/concurrentqueue.h>

namespace metrics::store::internal {

template <typename T>
using ConcurrentQueue = moodycamel::ConcurrentQueue<T>;
using ConsumerToken = moodycamel::ConsumerToken;

}  // namespace metrics::store::internal
