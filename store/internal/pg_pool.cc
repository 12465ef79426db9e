#include "store/internal/pg_pool.h"

#include <endian.h>

#include <chrono>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace metrics::store::internal {

PgParams& PgParams::Int8(int64_t v) {
  const uint64_t be = htobe64(static_cast<uint64_t>(v));
  Push(std::string_view(reinterpret_cast<const char*>(&be), sizeof(be)), false);
  return *this;
}
PgParams& PgParams::Bytes(std::string_view v) {
  Push(v, false);
  return *this;
}
PgParams& PgParams::Null() {
  Push({}, true);
  return *this;
}
PgParams& PgParams::Text(std::string_view v) {
  Push(v, false, 0);
  return *this;
}
void PgParams::Push(std::string_view v, bool null, int format) {
  values_.emplace_back(v);  // NUL-terminated, as text format needs
  nulls_.push_back(null);
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(format);
}

const char* const* PgParams::values() const {
  ptrs_.clear();
  for (size_t i = 0; i < values_.size(); ++i) {
    ptrs_.push_back(nulls_[i] ? nullptr : values_[i].data());
  }
  return ptrs_.data();
}

PgResult ExecPrepared(PGconn* c, const char* name, const PgParams& p) {
  return PgResult(
      PQexecPrepared(c, name, p.size(), p.values(), p.lengths(), p.formats(), /*resultFormat=*/1));
}

PgResult Exec(PGconn* c, const char* sql) { return PgResult(PQexec(c, sql)); }

PipelineResult RunPipeline(PGconn* c, const std::vector<PipelineStep>& steps) {
  PipelineResult out;
  out.results.resize(steps.size());
  auto fail = [&](absl::Status s) {
    if (out.status.ok()) out.status = std::move(s);
  };
  auto lost = [c](std::string_view what) {
    return absl::UnavailableError(
        absl::StrCat("postgresql: ", std::string(what), ": ",
                     absl::StripTrailingAsciiWhitespace(PQerrorMessage(c))));
  };
  if (PQenterPipelineMode(c) != 1) {
    fail(lost("enter pipeline mode"));
    return out;
  }
  const PgParams none;  // not static: values() writes its pointer cache
  size_t sent = 0;
  for (; sent < steps.size(); ++sent) {
    const PipelineStep& step = steps[sent];
    const PgParams& p = step.params != nullptr ? *step.params : none;
    const int ok = step.name != nullptr
                       ? PQsendQueryPrepared(c, step.name, p.size(), p.values(), p.lengths(),
                                             p.formats(), /*resultFormat=*/1)
                       : PQsendQueryParams(c, step.sql, 0, nullptr, nullptr, nullptr, nullptr, 1);
    if (ok != 1) break;
  }
  if (sent < steps.size() || PQpipelineSync(c) != 1) {
    fail(lost("send"));
  } else {
    for (size_t i = 0; i < steps.size(); ++i) {
      const char* what = steps[i].name != nullptr ? steps[i].name : steps[i].sql;
      PgResult r(PQgetResult(c));
      if (r == nullptr) {  // the connection failed
        fail(lost(what));
        break;
      }
      if (absl::Status s = PgStatus(c, r.get(), what);
          !s.ok() && PQresultStatus(r.get()) != PGRES_PIPELINE_ABORTED) {
        fail(std::move(s));
      }
      out.results[i] = std::move(r);
      PgResult end(PQgetResult(c));  // each step's results end with a null
    }
    if (out.status.ok() || PQstatus(c) == CONNECTION_OK) {
      PgResult sync(PQgetResult(c));  // PGRES_PIPELINE_SYNC
    }
  }
  if (PQexitPipelineMode(c) != 1 && PQstatus(c) == CONNECTION_OK) {
    // Results left unread (a step's result was missing): the caller must not reuse `c`.
    fail(lost("exit pipeline mode"));
  }
  return out;
}

absl::Status PgStatus(PGconn* c, const PGresult* r, std::string_view what) {
  const ExecStatusType st = r == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return absl::OkStatus();
  const char* state = r == nullptr ? nullptr : PQresultErrorField(r, PG_DIAG_SQLSTATE);
  std::string msg(r != nullptr && PQresultErrorMessage(r)[0] != '\0' ? PQresultErrorMessage(r)
                                                                     : PQerrorMessage(c));
  msg = std::string(absl::StripTrailingAsciiWhitespace(msg));
  std::string text = "postgresql: " + std::string(what) + ": ";
  if (state != nullptr) text += "SQLSTATE " + std::string(state) + ": ";
  text += msg;
  if (PQstatus(c) != CONNECTION_OK || state == nullptr) return absl::UnavailableError(text);
  const std::string_view cls(state, 2);
  if (cls == "08" || cls == "53" || cls == "57") return absl::UnavailableError(text);
  if (cls == "40") return absl::AbortedError(text);
  return absl::InternalError(text);
}

int64_t GetInt8(const PGresult* r, int row, int col) {
  uint64_t be = 0;
  std::memcpy(&be, PQgetvalue(r, row, col), sizeof(be));
  return static_cast<int64_t>(be64toh(be));
}

std::string GetBytes(const PGresult* r, int row, int col) {
  if (PQgetisnull(r, row, col)) return {};
  return std::string(PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col)));
}

PgPool::PgPool(std::string conninfo, size_t max, OnConnect on_connect, PgMetrics* metrics)
    : conninfo_(std::move(conninfo)),
      max_(max == 0 ? 1 : max),
      on_connect_(std::move(on_connect)),
      metrics_(metrics) {}

void PgPool::Publish() {
  if (metrics_ != nullptr) metrics_->SetConnections(idle_.size(), open_ - idle_.size());
}

PgPool::~PgPool() = default;

absl::StatusOr<PgConnPtr> PgPool::ConnectUnprepared(const std::string& conninfo) {
  PgConnPtr c(PQconnectdb(conninfo.c_str()));
  if (c == nullptr || PQstatus(c.get()) != CONNECTION_OK) {
    std::string msg = c == nullptr ? "out of memory" : PQerrorMessage(c.get());
    return absl::UnavailableError(
        absl::StrCat("postgresql: cannot connect: ", absl::StripTrailingAsciiWhitespace(msg)));
  }
  return c;
}

absl::StatusOr<PgConnPtr> PgPool::Connect() const {
  absl::StatusOr<PgConnPtr> c = ConnectUnprepared(conninfo_);
  if (!c.ok()) return c.status();
  if (on_connect_) {
    if (absl::Status s = on_connect_(c->get()); !s.ok()) return s;
  }
  return c;
}

absl::StatusOr<PgPool::Lease> PgPool::Acquire() {
  const auto start = std::chrono::steady_clock::now();
  auto waited = [&] {
    if (metrics_ != nullptr) {
      metrics_->Waited(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  };
  {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
      PgConnPtr c = std::move(idle_.back());
      idle_.pop_back();
      Publish();
      lk.unlock();
      waited();
      return Lease(this, std::move(c));
    }
    ++open_;  // a slot for the connection made below, outside the lock
    Publish();
  }
  absl::StatusOr<PgConnPtr> c = Connect();
  waited();
  if (!c.ok()) {
    if (metrics_ != nullptr) metrics_->CountError(c.status());
    std::lock_guard lk(mu_);
    --open_;
    Publish();
    cv_.notify_one();
    return c.status();
  }
  return Lease(this, *std::move(c));
}

void PgPool::DropIdle() {
  std::lock_guard lk(mu_);
  open_ -= idle_.size();
  idle_.clear();
  Publish();
  cv_.notify_all();
}

void PgPool::Return(PgConnPtr conn) {
  std::lock_guard lk(mu_);
  if (conn != nullptr && PQstatus(conn.get()) == CONNECTION_OK &&
      PQtransactionStatus(conn.get()) == PQTRANS_IDLE) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;  // dropped (conn's deleter closes it)
  }
  Publish();
  cv_.notify_one();
}

}  // namespace metrics::store::internal
