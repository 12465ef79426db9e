#include "exposition/guarded_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace metrics::exposition {
namespace {

using Clock = std::chrono::steady_clock;

// Slices of every wait, so that a stopping server is noticed without waking threads by hand.
constexpr auto kSlice = std::chrono::milliseconds(100);
// An idle keep-alive connection gives its thread up after this long when others are waiting.
constexpr auto kReclaimAfter = std::chrono::milliseconds(50);
// How long a closed connection may drain what the client still sends (so that the client reads
// our last response instead of a reset), and how many may drain at once.
constexpr auto kLinger = std::chrono::milliseconds(1000);
constexpr size_t kMaxLingering = 4096;

constexpr char k503[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 52\r\n"
    "Retry-After: 1\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":\"too many connections, retry in a moment\"}\n";
static_assert(sizeof("{\"error\":\"too many connections, retry in a moment\"}\n") - 1 == 52);

void IpAndPort(const sockaddr_storage& addr, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

int PollFor(int fd, short events, Clock::duration wait) {
  pollfd p{.fd = fd, .events = events, .revents = 0};
  const int ms = static_cast<int>(
      std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(wait).count()));
  int r;
  do {
    r = ::poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

struct GuardedServer::Counters {
  std::atomic<uint64_t> accepted{0}, rejected{0}, timed_out{0}, header_too_large{0}, tls_failed{0};
  std::atomic<size_t> live{0};
};

// ---------------------------------------------------------------------------------------------
// The pool: workers, the ready queue, and the lingering closer. Its counters live in the server so
// that they outlive a stop.

class GuardedServer::Pool {
 public:
  Pool(GuardedServer* server, Counters* counters);
  ~Pool() { Stop(); }

  // Listener thread: take a connection, or refuse it.
  void Admit(socket_t sock);
  void Stop();
  // Someone is queued for a thread (relaxed: a hint for fairness, not a synchronization point).
  bool Waiting() const { return waiting_.load(std::memory_order_relaxed) > 0; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }  // pairs with Stop
  void Close(int fd, SSL* ssl);

  GuardedServer* const server;
  Counters* const counters;

 private:
  void Push(std::unique_ptr<Connection> c);
  void Work();
  void Linger();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Connection>> queue_;  // under mu_
  std::atomic<size_t> waiting_{0};                 // queue_.size(), for lock-free peeks
  std::atomic<bool> stopping_{false};
  std::vector<std::thread> workers_;
  bool stopped_ = false;  // under mu_

  std::mutex linger_mu_;
  std::condition_variable linger_cv_;
  std::vector<std::pair<int, Clock::time_point>> lingering_;  // under linger_mu_
  bool linger_stop_ = false;                                  // under linger_mu_
  std::thread closer_;
};

// One client connection: cpp-httplib's Stream over a non-blocking socket (plain or TLS) whose
// every wait is bounded by the current request's deadline. Owned by one worker at a time.
class GuardedServer::Connection final : public httplib::Stream {
 public:
  Connection(Pool* pool, int fd, SSL* ssl) : pool_(pool), fd_(fd), ssl_(ssl) {}
  ~Connection() override {
    pool_->Close(fd_, ssl_);
    pool_->counters->live.fetch_sub(1, std::memory_order_relaxed);
  }

  // Serves requests until the connection should close (false) or give its thread to another
  // connection (true).
  bool Serve();

  bool is_readable() const override {
    return buffered() > 0 || (ssl_ != nullptr && SSL_pending(ssl_) > 0) ||
           const_cast<Connection*>(this)->Wait(POLLIN, read_deadline_);
  }
  bool is_writable() const override {
    return const_cast<Connection*>(this)->Wait(POLLOUT, write_deadline_);
  }
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (getpeername(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) IpAndPort(a, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage a{};
    socklen_t len = sizeof(a);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0) IpAndPort(a, ip, port);
  }
  socket_t socket() const override { return fd_; }

  bool close_after = false;
  bool headers_done = true;

 private:
  size_t buffered() const { return len_ - off_; }
  bool Handshake();
  bool WaitForRequest();
  void BeginRequest();
  // Waits for `events` until `deadline`; false on timeout (counted), error or, for reads, a stop.
  bool Wait(short events, Clock::time_point deadline);
  ssize_t Fill();
  bool Flush();
  bool Send(const char* ptr, size_t size);
  static constexpr size_t kOutBuffer = 16 << 10;
  std::string out_;

  Pool* const pool_;
  const int fd_;
  SSL* const ssl_;
  bool handshaken_ = false;
  size_t served_ = 0;
  char buf_[16 << 10];
  size_t off_ = 0, len_ = 0;
  Clock::time_point read_deadline_, write_deadline_;
  bool writing_ = false;    // the last operation was a write: the next read starts a new phase
  bool timed_out_ = false;  // counted once per request
  size_t header_bytes_ = 0;
};

namespace {
thread_local GuardedServer::Connection* current_connection = nullptr;

// cpp-httplib calls enqueue() on its listener thread for every accepted socket; running the task
// there hands the socket to our pool at once (process_and_close_socket only admits it).
class InlineQueue final : public httplib::TaskQueue {
 public:
  explicit InlineQueue(std::function<void()> on_shutdown) : on_shutdown_(std::move(on_shutdown)) {}
  void enqueue(std::function<void()> fn) override { fn(); }
  void shutdown() override { on_shutdown_(); }

 private:
  std::function<void()> on_shutdown_;
};
}  // namespace

// ---------------------------------------------------------------------------------------------
// Connection

bool GuardedServer::Connection::Wait(short events, Clock::time_point deadline) {
  for (;;) {
    const auto now = Clock::now();
    if (now >= deadline) {
      if (!timed_out_) {
        timed_out_ = true;
        pool_->counters->timed_out.fetch_add(1, std::memory_order_relaxed);
      }
      return false;
    }
    // A stopping server finishes writing responses but reads no more.
    if (events == POLLIN && pool_->stopping()) return false;
    const int r = PollFor(fd_, events, std::min<Clock::duration>(deadline - now, kSlice));
    if (r > 0) return true;  // ready, or an error the next recv/send reports
    if (r < 0) return false;
  }
}

ssize_t GuardedServer::Connection::Fill() {
  off_ = len_ = 0;
  for (;;) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int n = SSL_read(ssl_, buf_, sizeof(buf_));
      if (n > 0) return len_ = static_cast<size_t>(n);
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      if (err == SSL_ERROR_WANT_READ) {
        if (!Wait(POLLIN, read_deadline_)) return -1;
      } else if (err == SSL_ERROR_WANT_WRITE) {
        if (!Wait(POLLOUT, read_deadline_)) return -1;
      } else {
        return -1;
      }
      continue;
    }
    const ssize_t n = ::recv(fd_, buf_, sizeof(buf_), 0);
    if (n > 0) return len_ = static_cast<size_t>(n);
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    if (!Wait(POLLIN, read_deadline_)) return -1;
  }
}

ssize_t GuardedServer::Connection::read(char* ptr, size_t size) {
  if (writing_) {
    // A read after a write (cpp-httplib's "100 Continue", then the body): same request deadline,
    // and what was written must reach the client before we wait for it.
    writing_ = false;
    if (!Flush()) return -1;
  }
  if (buffered() == 0) {
    const ssize_t n = Fill();
    if (n <= 0) return n;
  }
  size_t n = std::min(size, buffered());
  if (!headers_done) {
    if (header_bytes_ + n > pool_->server->options_.max_header_bytes) {
      pool_->counters->header_too_large.fetch_add(1, std::memory_order_relaxed);
      close_after = true;
      return -1;
    }
    header_bytes_ += n;
  }
  std::memcpy(ptr, buf_ + off_, n);
  off_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t GuardedServer::Connection::write(const char* ptr, size_t size) {
  if (!writing_) {
    writing_ = true;
    write_deadline_ =
        std::max(write_deadline_, Clock::now() + pool_->server->options_.request_timeout);
  }
  // cpp-httplib writes a response as headers, then body: two sends are two trips through TCP and
  // loopback delivery. Small pieces gather here and leave in one send (Flush after the request).
  if (out_.size() + size <= kOutBuffer) {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  if (!Flush()) return -1;
  if (size <= kOutBuffer) {
    out_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  return Send(ptr, size) ? static_cast<ssize_t>(size) : -1;
}

bool GuardedServer::Connection::Flush() {
  if (out_.empty()) return true;
  const bool ok = Send(out_.data(), out_.size());
  out_.clear();
  return ok;
}

bool GuardedServer::Connection::Send(const char* ptr, size_t size) {
  size_t done = 0;
  while (done < size) {
    if (ssl_ != nullptr) {
      ERR_clear_error();
      const int chunk = static_cast<int>(std::min<size_t>(size - done, 1 << 30));
      const int n = SSL_write(ssl_, ptr + done, chunk);
      if (n > 0) {
        done += static_cast<size_t>(n);
        continue;
      }
      const int err = SSL_get_error(ssl_, n);
      if (err == SSL_ERROR_WANT_WRITE) {
        if (!Wait(POLLOUT, write_deadline_)) return false;
      } else if (err == SSL_ERROR_WANT_READ) {
        if (!Wait(POLLIN, write_deadline_)) return false;
      } else {
        return false;
      }
      continue;
    }
    const ssize_t n = ::send(fd_, ptr + done, size - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!Wait(POLLOUT, write_deadline_)) return false;
    } else {
      return false;
    }
  }
  return true;
}

bool GuardedServer::Connection::Handshake() {
  read_deadline_ = Clock::now() + pool_->server->options_.request_timeout;
  for (;;) {
    ERR_clear_error();
    const int r = SSL_accept(ssl_);
    if (r == 1) return handshaken_ = true;
    const int err = SSL_get_error(ssl_, r);
    const bool ok = (err == SSL_ERROR_WANT_READ && Wait(POLLIN, read_deadline_)) ||
                    (err == SSL_ERROR_WANT_WRITE && Wait(POLLOUT, read_deadline_));
    if (!ok) {
      pool_->counters->tls_failed.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  }
}

bool GuardedServer::Connection::WaitForRequest() {
  if (buffered() > 0 || (ssl_ != nullptr && SSL_pending(ssl_) > 0)) return true;
  const auto start = Clock::now();
  const auto idle_until = start + pool_->server->options_.idle_timeout;
  for (;;) {
    if (pool_->stopping()) return false;
    const auto now = Clock::now();
    if (now >= idle_until) return false;
    if (now - start >= kReclaimAfter && pool_->Waiting()) return false;
    const auto slice = pool_->Waiting() ? kReclaimAfter : kSlice;
    const int r = PollFor(fd_, POLLIN, std::min<Clock::duration>(idle_until - now, slice));
    if (r > 0) return true;
    if (r < 0) return false;
  }
}

void GuardedServer::Connection::BeginRequest() {
  const auto now = Clock::now();
  read_deadline_ = now + pool_->server->options_.request_timeout;
  write_deadline_ = now;
  writing_ = false;
  timed_out_ = false;
  headers_done = false;
  header_bytes_ = 0;
}

bool GuardedServer::Connection::Serve() {
  const GuardOptions& o = pool_->server->options_;
  if (ssl_ != nullptr && !handshaken_ && !Handshake()) return false;
  current_connection = this;
  bool requeue = false;
  while (served_ < o.max_requests_per_connection) {
    if (!WaitForRequest()) break;
    BeginRequest();
    const bool last = served_ + 1 >= o.max_requests_per_connection || pool_->stopping();
    bool client_closed = false;
    const SSL* ssl = ssl_;
    const bool ok = pool_->server->process_request(*this, last, client_closed,
                                                   [ssl](httplib::Request& req) { req.ssl = ssl; });
    ++served_;
    if (!Flush()) break;
    // A request that never reached routing was malformed (request line or headers): what follows
    // on the connection cannot be trusted to start a request.
    if (!headers_done) break;
    if (!ok || client_closed || close_after || last || timed_out_) break;
    if (pool_->Waiting()) {
      requeue = true;
      break;
    }
  }
  current_connection = nullptr;
  return requeue;
}

// ---------------------------------------------------------------------------------------------
// Pool

GuardedServer::Pool::Pool(GuardedServer* s, Counters* c) : server(s), counters(c) {
  for (size_t i = 0; i < s->options_.threads; ++i) workers_.emplace_back([this] { Work(); });
  closer_ = std::thread([this] { Linger(); });
}

void GuardedServer::Pool::Admit(socket_t sock) {
  counters->accepted.fetch_add(1, std::memory_order_relaxed);
  const int flags = fcntl(sock, F_GETFL, 0);
  fcntl(sock, F_SETFL, flags | O_NONBLOCK);
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  const bool tls = server->tls_ctx_ != nullptr;
  if (stopping() ||
      counters->live.load(std::memory_order_relaxed) >= server->options_.max_connections) {
    counters->rejected.fetch_add(1, std::memory_order_relaxed);
    // A TLS client cannot read a plaintext answer: it just sees the connection close.
    if (!tls) (void)::send(sock, k503, sizeof(k503) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    Close(sock, nullptr);
    return;
  }
  SSL* ssl = nullptr;
  if (tls) {
    ssl = SSL_new(static_cast<SSL_CTX*>(server->tls_ctx_));
    if (ssl == nullptr || SSL_set_fd(ssl, sock) != 1) {
      if (ssl != nullptr) SSL_free(ssl);
      counters->tls_failed.fetch_add(1, std::memory_order_relaxed);
      Close(sock, nullptr);
      return;
    }
  }
  counters->live.fetch_add(1, std::memory_order_relaxed);
  Push(std::make_unique<Connection>(this, sock, ssl));
}

void GuardedServer::Pool::Push(std::unique_ptr<Connection> c) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (!stopped_) {
      queue_.push_back(std::move(c));
      waiting_.store(queue_.size(), std::memory_order_relaxed);
    }
  }
  cv_.notify_one();
  // c is still set when the pool had stopped: destroying it closes the connection.
}

void GuardedServer::Pool::Work() {
  for (;;) {
    std::unique_ptr<Connection> c;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return !queue_.empty() || stopped_; });
      if (queue_.empty()) return;
      c = std::move(queue_.front());
      queue_.pop_front();
      waiting_.store(queue_.size(), std::memory_order_relaxed);
    }
    if (!stopping() && c->Serve()) {
      Push(std::move(c));
    } else {
      c.reset();
    }
  }
}

void GuardedServer::Pool::Close(int fd, SSL* ssl) {
  if (ssl != nullptr) {
    (void)SSL_shutdown(ssl);  // one close_notify, non-blocking; no wait for the peer's
    SSL_free(ssl);
  }
  ::shutdown(fd, SHUT_WR);
  std::unique_lock<std::mutex> lk(linger_mu_);
  if (linger_stop_ || lingering_.size() >= kMaxLingering) {
    lk.unlock();
    ::close(fd);
    return;
  }
  lingering_.emplace_back(fd, Clock::now() + kLinger);
  linger_cv_.notify_one();
}

void GuardedServer::Pool::Linger() {
  std::vector<pollfd> fds;
  char sink[4096];
  std::unique_lock<std::mutex> lk(linger_mu_);
  for (;;) {
    linger_cv_.wait(lk, [&] { return !lingering_.empty() || linger_stop_; });
    if (linger_stop_) break;
    fds.clear();
    for (const auto& [fd, until] : lingering_) fds.push_back({.fd = fd, .events = POLLIN});
    lk.unlock();
    (void)::poll(fds.data(), fds.size(), 20);
    std::vector<int> done;
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      ssize_t n;
      do {
        n = ::recv(p.fd, sink, sizeof(sink), MSG_DONTWAIT);
      } while (n > 0);
      if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        done.push_back(p.fd);
      }
    }
    lk.lock();
    const auto now = Clock::now();
    std::erase_if(lingering_, [&](const std::pair<int, Clock::time_point>& e) {
      if (e.second <= now || std::find(done.begin(), done.end(), e.first) != done.end()) {
        ::close(e.first);
        return true;
      }
      return false;
    });
  }
  for (const auto& e : lingering_) ::close(e.first);
  lingering_.clear();
}

void GuardedServer::Pool::Stop() {
  stopping_.store(true, std::memory_order_release);  // pairs with stopping()
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (stopped_) return;
    stopped_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  std::deque<std::unique_ptr<Connection>> left;
  {
    std::lock_guard<std::mutex> lk(mu_);
    left.swap(queue_);
    waiting_.store(0, std::memory_order_relaxed);
  }
  left.clear();  // closes them
  {
    std::lock_guard<std::mutex> lk(linger_mu_);
    linger_stop_ = true;
  }
  linger_cv_.notify_all();
  closer_.join();
}

// ---------------------------------------------------------------------------------------------
// GuardedServer

GuardedServer::GuardedServer(GuardOptions options) : options_(std::move(options)) {
  if (options_.threads == 0) {
    status_ = absl::InvalidArgumentError("threads must be at least 1");
  } else if (options_.max_connections < options_.threads) {
    status_ = absl::InvalidArgumentError(absl::StrCat("max_connections (", options_.max_connections,
                                                      ") must be at least threads (",
                                                      options_.threads, ")"));
  } else if (options_.max_requests_per_connection == 0) {
    status_ = absl::InvalidArgumentError("max_requests_per_connection must be at least 1");
  } else if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
    status_ = absl::InvalidArgumentError("TLS needs both a certificate and a key file");
  } else if (!options_.tls_cert_file.empty()) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) {
      status_ = absl::InternalError("cannot create a TLS context");
    } else if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
               SSL_CTX_use_certificate_chain_file(ctx, options_.tls_cert_file.c_str()) != 1 ||
               SSL_CTX_use_PrivateKey_file(ctx, options_.tls_key_file.c_str(), SSL_FILETYPE_PEM) !=
                   1 ||
               SSL_CTX_check_private_key(ctx) != 1) {
      char err[256] = "unknown error";
      if (unsigned long e = ERR_get_error(); e != 0) ERR_error_string_n(e, err, sizeof(err));
      status_ = absl::InvalidArgumentError(absl::StrCat(
          "TLS certificate ", options_.tls_cert_file, " / key ", options_.tls_key_file, ": ", err));
      SSL_CTX_free(ctx);
    } else {
      SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
      tls_ctx_ = ctx;
    }
  }
  counters_ = std::make_unique<Counters>();
  set_tcp_nodelay(true);
  set_keep_alive_max_count(options_.max_requests_per_connection);
  // cpp-httplib's own pre-routing slot: the header cap stops at the end of the headers.
  Server::set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    HeadersDone();
    return user_pre_routing_ ? user_pre_routing_(req, res) : HandlerResponse::Unhandled;
  });
  new_task_queue = [this]() -> httplib::TaskQueue* {
    pool_ = std::make_unique<Pool>(this, counters_.get());
    return new InlineQueue([this] { pool_->Stop(); });
  };
}

GuardedServer::~GuardedServer() {
  stop();
  pool_.reset();
  if (tls_ctx_ != nullptr) SSL_CTX_free(static_cast<SSL_CTX*>(tls_ctx_));
}

bool GuardedServer::process_and_close_socket(socket_t sock) {
  pool_->Admit(sock);
  return true;
}

httplib::Server& GuardedServer::set_pre_routing_handler(HandlerWithResponse handler) {
  user_pre_routing_ = std::move(handler);
  return *this;
}

GuardStats GuardedServer::stats() const {
  const Counters& c = *counters_;
  constexpr auto r = std::memory_order_relaxed;  // monotonic counts, read on their own
  return {.accepted = c.accepted.load(r),
          .rejected = c.rejected.load(r),
          .timed_out = c.timed_out.load(r),
          .header_too_large = c.header_too_large.load(r),
          .tls_failed = c.tls_failed.load(r),
          .live = c.live.load(r)};
}

int GuardedServer::Bind(const std::string& host, int port) {
  if (!status_.ok()) return -1;
  set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const int bound = port == 0 ? bind_to_any_port(host) : (bind_to_port(host, port) ? port : -1);
  // cpp-httplib listens with a backlog of 5: a burst of connects (64 clients starting at once)
  // overflows it, and the refused SYNs are retried after a second. listen() again sets the backlog.
  if (bound > 0) ::listen(svr_sock_, SOMAXCONN);
  return bound;
}

void GuardedServer::CloseAfterResponse(httplib::Response& res) {
  if (current_connection != nullptr) current_connection->close_after = true;
  res.set_header("Connection", "close");
}

void GuardedServer::HeadersDone() {
  if (current_connection != nullptr) current_connection->headers_done = true;
}

}  // namespace metrics::exposition
