// Wakes readers of a PostgreSQL store when appends commit, in this process or any other: the
// append transaction runs pg_notify(kChannel, '<its last position>'), delivered at COMMIT, and a
// listener thread with a connection of its own (LISTEN kChannel) hands the highest position seen
// to whoever waits. Replaces polling for the server's projections (and any catch-up reader).
//
// Threads: WaitBeyond() is thread-safe; the listener thread starts with the first call and stops
// in the destructor (within ~200 ms). While its connection is down it reconnects every second,
// and wakes every waiter once it is back (notifications sent meanwhile were lost: read again).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace metrics::store::internal {

class PgListener {
 public:
  static constexpr const char* kChannel = "eventstore_appended";

  explicit PgListener(std::string conninfo) : conninfo_(std::move(conninfo)) {}
  ~PgListener();
  PgListener(const PgListener&) = delete;
  PgListener& operator=(const PgListener&) = delete;

  // Blocks until a commit announces a position above `after`, the listener reconnects, or
  // `timeout` passes; true unless it timed out. Commits announced before the listener started
  // (the first call) are not seen: read first, then wait.
  bool WaitBeyond(uint64_t after, std::chrono::milliseconds timeout);

 private:
  void Loop();

  const std::string conninfo_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t announced_ = 0;   // guarded by mu_: the highest position notified
  uint64_t reconnects_ = 0;  // guarded by mu_
  bool started_ = false;     // guarded by mu_
  // Set under mu_ (so no waiter misses it between its check and its wait); the loop also reads
  // it between polls without the lock.
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace metrics::store::internal
