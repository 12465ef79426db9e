// One Append() call on its way from the caller's thread to the writer thread and back.
//
// Threads. The caller fills the request in, on its own stack, and hands it to the writer
// (Writer::Submit); from then until `done` the writer alone touches it, except the completion
// handshake (mu, cv, signaled).
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

  // Completion. The writer sets `signaled` and notifies under `mu` (for a caller that went to
  // sleep), unlocks, and then stores `done`: its last touch of the request. The caller spins on
  // `done`; if it sleeps instead, it waits for `signaled`, then for `done`. Either way it returns
  // only after the writer has let go of the request, so the request can live on its stack, and a
  // caller that saw `done` while spinning never touches the mutex.
  std::atomic<bool> done{false};
  std::mutex mu;
  std::condition_variable cv;
  bool signaled = false;  // under mu

  // The writer's last touch.
  void Complete() {
    {
      std::lock_guard<std::mutex> lk(mu);
      signaled = true;
      cv.notify_one();
    }
    done.store(true, std::memory_order_release);  // pairs with the caller's acquire loads
  }
};

}  // namespace metrics::store::internal
