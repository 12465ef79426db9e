// The ceiling for tools/ingest-bench.sh: a cpp-httplib server that answers
// POST /streams/{stream}/events with 201 and a small JSON body, and does nothing else (no JSON
// parsing, no store, no fsync, no metrics). Configured as eventstore-server's HTTP side is meant to
// be (TCP_NODELAY, long keep-alive, a thread per connection), so the ratio of the two servers'
// requests/s under the same wrk load is the cost of everything above the HTTP library.
//
//   bare-httplib-server [--listen HOST:PORT] [--threads N]
//
// --listen defaults to 127.0.0.1:0; port 0 binds any free port. Once bound it prints
// "listening <port>" on stdout (as eventstore-server does) so a script can start it on port 0.
// SIGINT/SIGTERM: stop, then print "bare-httplib-server: stopped after N requests" on stderr
// (N = POSTs answered or in progress; tools/ingest-bench.sh checks it against wrk's count).
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include <httplib.h>

namespace {

[[noreturn]] void Usage(const char* argv0, const std::string& why) {
  std::fprintf(stderr, "%s: %s\nusage: %s [--listen HOST:PORT] [--threads N]\n", argv0, why.c_str(),
               argv0);
  std::exit(2);
}

long ParseNumber(const char* argv0, const std::string& flag, const std::string& v, long lo,
                 long hi) {
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < lo || n > hi) {
    Usage(argv0, flag + ": expected a number in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got '" + v + "'");
  }
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 0;
  size_t threads = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") Usage(argv[0], "help");
    if (i + 1 >= argc) Usage(argv[0], flag + ": missing value");
    const std::string value = argv[++i];
    if (flag == "--listen") {
      size_t colon = value.rfind(':');
      if (colon == std::string::npos) Usage(argv[0], "--listen: expected HOST:PORT");
      host = value.substr(0, colon);
      port = static_cast<int>(ParseNumber(argv[0], flag, value.substr(colon + 1), 0, 65535));
    } else if (flag == "--threads") {
      threads = static_cast<size_t>(ParseNumber(argv[0], flag, value, 1, 4096));
    } else {
      Usage(argv[0], "unknown flag " + flag);
    }
  }

  // Block the stop signals before any thread starts, so every thread inherits the mask and only
  // sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  httplib::Server http;
  // As eventstore-server (metrics::exposition::UseExclusivePort): SO_REUSEADDR only, not
  // cpp-httplib's default SO_REUSEPORT, so no second process can share the port unnoticed.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Without TCP_NODELAY a keep-alive client waits out Nagle + delayed ACK (~40 ms) per response.
  http.set_tcp_nodelay(true);
  // cpp-httplib closes a keep-alive connection after 5 requests by default; a benchmark of
  // keep-alive wants the connection kept.
  http.set_keep_alive_max_count(100000);
  // A keep-alive connection holds a pool thread for its lifetime: N threads serve N connections.
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  std::atomic<unsigned long long> requests{0};
  http.Post(R"(/streams/([A-Za-z0-9._:\-]+)/events)",
            [&requests](const httplib::Request&, httplib::Response& res) {
              requests.fetch_add(1, std::memory_order_relaxed);
              res.status = 201;
              res.set_content(R"({"first_position":1,"last_position":1,"stream_version":1})",
                              "application/json");
            });

  int bound = port == 0 ? http.bind_to_any_port(host) : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    std::fprintf(stderr, "bare-httplib-server: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  std::thread server_thread([&] { http.listen_after_bind(); });
  std::fprintf(stderr, "bare-httplib-server: listening on http://%s:%d (%zu threads)\n",
               host.c_str(), bound, threads);
  std::fprintf(stdout, "listening %d\n", bound);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  http.stop();
  server_thread.join();
  std::fprintf(stderr, "bare-httplib-server: stopped after %llu requests\n", requests.load());
  return 0;
}
