// A cpp-httplib server that holds up when clients are many, slow or hostile: TCP_NODELAY, a fixed
// worker pool with fair keep-alive, a cap on live connections (beyond it: 503), one deadline per
// request instead of one per read, a cap on header bytes, and optional TLS (OpenSSL).
//
// cpp-httplib's own loop gives each connection a thread for its whole keep-alive life, closes it
// after 5 requests, times out per read (a client dripping a byte every 4 s holds a thread for
// ever) and queues connections without bound. GuardedServer keeps cpp-httplib's request parsing,
// routing and handlers, and replaces the connection loop around them:
//
// clang-format off
//   accept (cpp-httplib's listener thread)
//     |-- live connections >= max_connections --> 503 + close (a lingering closer drains them)
//     `-- queue --> worker pool (threads): serve requests while the client keeps sending
//                      | idle and others waiting -> close (reclaim the thread)
//                      | served one and others waiting -> back of the queue (fairness)
//                      | idle for idle_timeout, max_requests served, error -> close
// clang-format on
//
// A request's deadline runs from its first byte to the end of its body (request_timeout); its
// response then has the same time again to be written. A read or write past it fails, and the
// connection is closed.
//
// Threads: construct, configure and bind from one thread; listen_after_bind() runs the listener
// on the calling thread; stop() from any thread returns at once and the listen call returns once
// every worker has finished its current request. Handlers run on the worker threads, one request
// per thread at a time (thread-local request state, as in instrument/http_metrics.h, is sound).
// The static helpers below act on the calling worker's current connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <httplib.h>

#include "absl/status/status.h"

namespace metrics::exposition {

struct GuardOptions {
  size_t threads = 64;           // workers; >= 1
  size_t max_connections = 512;  // live connections (served + waiting); >= threads
  size_t max_requests_per_connection = 100000;
  std::chrono::milliseconds idle_timeout{5000};      // keep-alive wait for the next request
  std::chrono::milliseconds request_timeout{10000};  // first byte -> end of body; then the response
  size_t max_header_bytes = 64 << 10;                // request line + headers
  // PEM files; both or neither. With them every connection is TLS.
  std::string tls_cert_file;
  std::string tls_key_file;
};

// Counts since construction; read with relaxed loads (monotonic, no ordering with anything else).
struct GuardStats {
  uint64_t accepted = 0;
  uint64_t rejected = 0;   // over max_connections: 503
  uint64_t timed_out = 0;  // requests cut off by their deadline
  uint64_t header_too_large = 0;
  uint64_t tls_failed = 0;  // handshakes that failed or timed out
  size_t live = 0;          // connections now open (served or waiting)
};

class GuardedServer : public httplib::Server {
 public:
  explicit GuardedServer(GuardOptions options);
  ~GuardedServer() override;  // after the listen call has returned

  // OK, or why the options (thread counts, TLS files) cannot work. Check before binding.
  absl::Status status() const { return status_; }
  bool is_valid() const override { return status_.ok(); }
  const GuardOptions& options() const { return options_; }
  GuardStats stats() const;

  // Binds without SO_REUSEPORT (a second process on the same port is an error, not a silent
  // half of the traffic). 0 for port: any free port. Returns the port, or -1.
  int Bind(const std::string& host, int port);

  // For a handler: close the connection once this response is written (e.g. after refusing a
  // request whose body was not read). Also sets "Connection: close" on `res`.
  static void CloseAfterResponse(httplib::Response& res);
  // For a pre-routing handler: the request line and headers have been read; the header byte cap
  // stops counting. GuardedServer installs a pre-routing handler that calls this and then the one
  // given to set_pre_routing_handler, which it hides.
  static void HeadersDone();
  Server& set_pre_routing_handler(HandlerWithResponse handler);

  class Pool;
  class Connection;
  struct Counters;

 private:
  bool process_and_close_socket(socket_t sock) override;

  GuardOptions options_;
  absl::Status status_;
  void* tls_ctx_ = nullptr;  // SSL_CTX*
  HandlerWithResponse user_pre_routing_;
  std::unique_ptr<Counters> counters_;
  std::unique_ptr<Pool> pool_;
};

}  // namespace metrics::exposition
