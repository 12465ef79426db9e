// libpq plumbing for store/postgres_store: owned results, parameters, error -> absl::Status, and a
// small pool of connections that each get the store's statements prepared when they connect.
//
// Threads: a PGconn is not thread-safe, so the pool lends each connection to one thread at a time
// (Lease); Acquire() is thread-safe and blocks while all `max` connections are lent out.
#pragma once

#include <libpq-fe.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/internal/pg_metrics.h"

namespace metrics::store::internal {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConnPtr = std::unique_ptr<PGconn, PgConnDeleter>;

// The parameters of one statement, in binary format unless Text() (so bytea and uuid need no
// escaping).
// A value is kept here, so the pointers handed to libpq stay valid until the call returns.
class PgParams {
 public:
  PgParams& Int8(int64_t v);
  PgParams& Bytes(std::string_view v);  // text, bytea, or a uuid's 16 bytes
  PgParams& Null();
  // In text format (for a uuid[] literal such as {...,...}).
  PgParams& Text(std::string_view v);

  int size() const { return static_cast<int>(values_.size()); }
  // Valid until this object changes or moves (a moved short string moves its bytes).
  const char* const* values() const;
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  void Push(std::string_view v, bool null, int format = 1);
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  mutable std::vector<const char*> ptrs_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
};

// Runs a prepared statement; results in binary format.
PgResult ExecPrepared(PGconn* c, const char* name, const PgParams& params);
// Runs SQL text without parameters (BEGIN, COMMIT, DDL); results in text format.
PgResult Exec(PGconn* c, const char* sql);

// One statement of a pipeline: a prepared statement with parameters, or SQL text without.
struct PipelineStep {
  const char* name = nullptr;  // prepared statement; or
  const char* sql = nullptr;   // SQL text (one statement)
  const PgParams* params = nullptr;
};

// What a pipeline returned: every step's result (binary format) in order, and the first failure.
struct PipelineResult {
  std::vector<PgResult> results;  // one per step; null where the connection failed first
  absl::Status status;            // OK, or the first failing step's PgStatus
};

// Sends every step, then one Sync, and reads every result: one round trip for all (libpq's
// pipeline mode). After a failing step the server skips the rest (PGRES_PIPELINE_ABORTED); a
// transaction the steps opened is then left failed, for the caller to roll back. After a failure
// that is not PostgreSQL's answer to a step (Unavailable without a SQLSTATE), drop the connection.
PipelineResult RunPipeline(PGconn* c, const std::vector<PipelineStep>& steps);

// OK when `r` is a success (PGRES_COMMAND_OK or PGRES_TUPLES_OK). Otherwise: Unavailable when
// the connection is gone or the SQLSTATE says the server cannot serve now (classes 08, 53, 57),
// Aborted for class 40 (serialization failure, deadlock), Internal for anything else; the message
// names `what`, the SQLSTATE and PostgreSQL's message.
absl::Status PgStatus(PGconn* c, const PGresult* r, std::string_view what);

// Binary-format column readers (the column must not be NULL unless said so).
int64_t GetInt8(const PGresult* r, int row, int col);
std::string GetBytes(const PGresult* r, int row, int col);  // empty when NULL

class PgPool {
 public:
  // Prepares statements on each new connection; an error fails the connection.
  using OnConnect = std::function<absl::Status(PGconn*)>;

  // Connects lazily, up to `max` connections. `metrics` (may be null) must outlive the pool.
  PgPool(std::string conninfo, size_t max, OnConnect on_connect, PgMetrics* metrics = nullptr);
  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Opens one connection (unpooled) and runs on_connect on it. Unavailable when it cannot.
  absl::StatusOr<PgConnPtr> Connect() const;
  // Opens one connection to `conninfo`, nothing prepared. Unavailable when it cannot.
  static absl::StatusOr<PgConnPtr> ConnectUnprepared(const std::string& conninfo);

  class Lease {
   public:
    Lease(PgPool* pool, PgConnPtr conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& o) noexcept : pool_(std::exchange(o.pool_, nullptr)), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->Return(std::move(conn_));
    }
    PGconn* get() const { return conn_.get(); }

   private:
    PgPool* pool_;
    PgConnPtr conn_;
  };

  // A connection for the caller's exclusive use until the Lease is destroyed; a broken connection
  // is dropped then (and a new one made by the next Acquire).
  absl::StatusOr<Lease> Acquire();
  // Closes every idle connection: after one was found dead (a server restart), the others
  // opened before it are likely dead too.
  void DropIdle();

 private:
  void Return(PgConnPtr conn);
  void Publish();  // requires mu_

  const std::string conninfo_;
  const size_t max_;
  const OnConnect on_connect_;
  PgMetrics* const metrics_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PgConnPtr> idle_;  // guarded by mu_
  size_t open_ = 0;              // guarded by mu_: idle + lent + being connected
};

}  // namespace metrics::store::internal
