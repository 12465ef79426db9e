#include "store/internal/pg_listener.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstdlib>

#include "store/internal/pg_pool.h"

namespace metrics::store::internal {

PgListener::~PgListener() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool PgListener::WaitBeyond(uint64_t after, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  if (!started_) {
    started_ = true;
    thread_ = std::thread([this] { Loop(); });
  }
  const uint64_t reconnects = reconnects_;
  return cv_.wait_for(lk, timeout,
                      [&] { return announced_ > after || reconnects_ != reconnects || stop_; });
}

void PgListener::Loop() {
  bool first = true;
  while (!stop_.load()) {
    auto c = PgPool::ConnectUnprepared(conninfo_);
    bool listening = false;
    if (c.ok()) {
      PgResult r(PQexec(c->get(), (std::string("LISTEN ") + kChannel).c_str()));
      listening = PQresultStatus(r.get()) == PGRES_COMMAND_OK;
    }
    if (!listening) {  // the database is away: try again in a second
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_.load(); });
      continue;
    }
    if (!first) {  // whatever was announced while we were away is lost: every waiter reads again
      std::lock_guard lk(mu_);
      ++reconnects_;
      cv_.notify_all();
    }
    first = false;
    PGconn* conn = c->get();
    while (!stop_.load() && PQstatus(conn) == CONNECTION_OK) {
      pollfd p{.fd = PQsocket(conn), .events = POLLIN, .revents = 0};
      if (poll(&p, 1, 200) < 0 || PQconsumeInput(conn) == 0) break;
      uint64_t highest = 0;
      while (PGnotify* n = PQnotifies(conn)) {
        const uint64_t position = std::strtoull(n->extra, nullptr, 10);
        if (position > highest) highest = position;
        PQfreemem(n);
      }
      if (highest > 0) {
        std::lock_guard lk(mu_);
        if (highest > announced_) announced_ = highest;
        cv_.notify_all();
      }
    }
  }
}

}  // namespace metrics::store::internal
