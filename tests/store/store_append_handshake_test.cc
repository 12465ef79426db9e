// The completion handshake's promise (store/internal/append_request.h): once a caller sees its
// request done — while spinning, or after sleeping — it may free the request at once, because the
// writer never touches it again; and the writer's result is visible to it. Here every request is
// on the heap and deleted the moment its caller is through, so a late touch by the "writer" is a
// heap-use-after-free under AddressSanitizer and a race under ThreadSanitizer (label
// `concurrency`: run under both), and a result written too late is a failed expectation.
#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "store/internal/append_request.h"

namespace metrics::store::internal {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kPerThread = 3000;
#else
constexpr int kPerThread = 20000;
#endif
constexpr int kThreads = 6;  // more than this machine's CPUs: sleepers, preemption in the handshake

TEST(StoreAppendHandshakeTest, CallersFreeRequestsTheMomentTheyAreDoneAndSeeTheResult) {
  std::mutex mu;
  std::deque<AppendRequest*> queue;
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    uint64_t n = 0;
    while (!stop.load()) {
      std::vector<AppendRequest*> batch;
      {
        std::lock_guard<std::mutex> lk(mu);
        batch.assign(queue.begin(), queue.end());
        queue.clear();
      }
      if (batch.empty()) {
        std::this_thread::yield();
        continue;
      }
      // Now and then as slow as an fsync, so that spinning callers give up and sleep.
      if (++n % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      for (AppendRequest* r : batch) {
        r->result.first_position = r->payload_bytes;  // the caller's tag, echoed
        r->status = absl::OkStatus();
        r->Complete();  // r may be gone from here on
      }
    }
  });
  std::atomic<int> wrong{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto* r = new AppendRequest;
        r->payload_bytes = static_cast<uint64_t>(t) * kPerThread + i;
        r->status = absl::UnknownError("not completed");
        {
          std::lock_guard<std::mutex> lk(mu);
          queue.push_back(r);
        }
        switch (i % 3) {
          case 0:  // sleeps at once (an append queued behind an fsync)
            r->Sleep();
            break;
          case 1:  // spins until done
            while (!r->Done()) std::this_thread::yield();
            break;
          default:  // spins a little, then sleeps
            for (int k = 0; k < 50 && !r->Done(); ++k) std::this_thread::yield();
            if (!r->Done()) r->Sleep();
        }
        if (!r->status.ok() || r->result.first_position != r->payload_bytes) wrong.fetch_add(1);
        delete r;
      }
    });
  }
  for (auto& c : callers) c.join();
  stop.store(true);
  writer.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace metrics::store::internal
