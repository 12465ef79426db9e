// One Append() call on its way from the caller's thread to the writer thread and back.
//
// Threads. The caller fills the request in, on its own stack, and hands it to the writer
// (Writer::Submit); from then until it is done the writer alone touches it, except the completion
// handshake (state, mu, cv, signaled).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "store/event_store.h"

namespace metrics::store::internal {

struct WriterStream;

struct AppendRequest {
  std::string_view stream;
  ExpectedVersion expected = ExpectedVersion::kAny;
  std::vector<NewEvent>* events = nullptr;
  int64_t accept_ns = 0;  // clock read in Append(): the event timestamp and the histogram's start
  uint64_t payload_bytes = 0;

  // Filled in by the writer.
  absl::Status status;
  AppendResult result;
  WriterStream* entry = nullptr;
  uint64_t prev_version = 0;
  int64_t timestamp_ns = 0;

  // Completion: `state` goes from kWaiting to kDone (the writer), or first to kSleeping (the
  // caller, once it stops spinning). The writer's last touch of the request is either its exchange
  // to kDone, when the caller is still spinning and may return at once, or — when the caller has
  // gone to sleep — its unlock of `mu` after setting `signaled`, which the sleeping caller must
  // lock again before it returns. Either way the caller returns only after the writer has let go,
  // so the request can live on its stack; and a woken caller never waits for a writer that was
  // preempted (an earlier handshake had the woken caller spin on a flag the writer set after its
  // unlock: with caller and writer on one CPU, it spun away the writer's time slice).
  static constexpr int kWaiting = 0, kSleeping = 1, kDone = 2;
  std::atomic<int> state{kWaiting};
  std::mutex mu;
  std::condition_variable cv;
  bool signaled = false;  // under mu

  // The writer, once the request's status and result are filled in.
  void Complete() {
    // Pairs with the caller's acquire load in Done() and its compare-exchange in Sleep().
    if (state.exchange(kDone, std::memory_order_acq_rel) != kSleeping) return;
    std::lock_guard<std::mutex> lk(mu);
    signaled = true;
    cv.notify_one();
  }

  // The caller.
  bool Done() const {
    return state.load(std::memory_order_acquire) == kDone;  // pairs with Complete()'s exchange
  }
  // Waits until Complete(), asleep.
  void Sleep() {
    int s = kWaiting;
    // Pairs with Complete()'s exchange: failing, the request is done and its result visible.
    if (!state.compare_exchange_strong(s, kSleeping, std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      return;
    }
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return signaled; });
  }
};

}  // namespace metrics::store::internal
