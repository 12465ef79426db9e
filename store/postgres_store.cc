#include "store/postgres_store.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "store/internal/append_validation.h"
#include "store/internal/pg_pool.h"

namespace metrics::store {
namespace {

using internal::ExecPrepared;
using internal::PgParams;
using internal::PgResult;
using internal::PgStatus;

constexpr Oid kInt8 = 20, kText = 25, kBytea = 17, kUuid = 2950, kUuidArray = 2951;

// Migration n (1-based) brings the schema from version n-1 to n.
constexpr const char* kMigrations[] = {
    R"sql(
CREATE TABLE messages (
  global_position bigint PRIMARY KEY,
  stream text NOT NULL,
  stream_version bigint NOT NULL,
  type text NOT NULL,
  id uuid,
  payload bytea NOT NULL,
  time_ns bigint NOT NULL,
  CONSTRAINT messages_stream_version UNIQUE (stream, stream_version));
CREATE UNIQUE INDEX messages_stream_id ON messages (stream, id) WHERE id IS NOT NULL;
)sql",
};
static_assert(std::size(kMigrations) == PostgresEventStore::kSchemaVersion);

constexpr const char* kColumns =
    "global_position, stream, stream_version, type, id, payload, time_ns";

struct Statement {
  const char* name;
  std::string sql;
  std::vector<Oid> types;
};

std::vector<Statement> Statements() {
  return {
      {"lock",
       absl::StrCat("SELECT pg_advisory_xact_lock(", PostgresEventStore::kLockClass, ", ",
                    PostgresEventStore::kAppendLockKey, ")"),
       {}},
      {"last",
       "SELECT global_position, time_ns FROM messages ORDER BY global_position DESC LIMIT 1",
       {}},
      {"stream_version",
       "SELECT coalesce(max(stream_version), 0)::bigint FROM messages WHERE stream = $1",
       {kText}},
      {"ids",
       "SELECT stream_version, global_position, id FROM messages WHERE stream = $1 AND id = "
       "ANY($2)",
       {kText, kUuidArray}},
      {"insert",
       absl::StrCat("INSERT INTO messages (", kColumns, ") VALUES ($1,$2,$3,$4,$5,$6,$7)"),
       {kInt8, kText, kInt8, kText, kUuid, kBytea, kInt8}},
      {"read_all",
       absl::StrCat("SELECT ", kColumns,
                    " FROM messages WHERE global_position >= $1 ORDER BY global_position LIMIT $2"),
       {kInt8, kInt8}},
      {"read_stream",
       absl::StrCat("SELECT ", kColumns,
                    " FROM messages WHERE stream = $1 AND stream_version >= $2"
                    " ORDER BY stream_version LIMIT $3"),
       {kText, kInt8, kInt8}},
      {"last_position", "SELECT coalesce(max(global_position), 0)::bigint FROM messages", {}},
      {"size", "SELECT pg_total_relation_size('messages')::bigint", {}},
  };
}

absl::Status Prepare(PGconn* c) {
  for (const Statement& s : Statements()) {
    PgResult r(PQprepare(c, s.name, s.sql.c_str(), static_cast<int>(s.types.size()),
                         s.types.empty() ? nullptr : s.types.data()));
    if (absl::Status st = PgStatus(c, r.get(), absl::StrCat("prepare ", s.name)); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

// In a transaction under the migration lock: brings the schema to kSchemaVersion.
absl::Status Migrate(PGconn* c) {
  auto run = [c](const std::string& sql, std::string_view what) {
    PgResult r = internal::Exec(c, sql.c_str());
    return PgStatus(c, r.get(), what);
  };
  if (absl::Status s = run("BEGIN", "begin migration"); !s.ok()) return s;
  absl::Status s = [&]() -> absl::Status {
    if (absl::Status s =
            run(absl::StrCat("SELECT pg_advisory_xact_lock(", PostgresEventStore::kLockClass, ", ",
                             PostgresEventStore::kMigrateLockKey, ")"),
                "migration lock");
        !s.ok()) {
      return s;
    }
    // No "already exists, skipping" notice on stderr at every start.
    if (absl::Status s = run("SET LOCAL client_min_messages = warning", "quiet notices"); !s.ok()) {
      return s;
    }
    if (absl::Status s =
            run("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "applied_at timestamptz NOT NULL DEFAULT now())",
                "create schema_version");
        !s.ok()) {
      return s;
    }
    PgResult r = internal::Exec(c, "SELECT coalesce(max(version), 0) FROM schema_version");
    if (absl::Status s = PgStatus(c, r.get(), "read schema_version"); !s.ok()) return s;
    const int have = std::atoi(PQgetvalue(r.get(), 0, 0));
    if (have > PostgresEventStore::kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("postgresql: the database's schema is version ", have,
                       ", newer than this binary's ", PostgresEventStore::kSchemaVersion));
    }
    for (int v = have + 1; v <= PostgresEventStore::kSchemaVersion; ++v) {
      if (absl::Status s = run(kMigrations[v - 1], absl::StrCat("migration to version ", v));
          !s.ok()) {
        return s;
      }
      if (absl::Status s =
              run(absl::StrCat("INSERT INTO schema_version (version) VALUES (", v, ")"),
                  "record schema version");
          !s.ok()) {
        return s;
      }
    }
    return run("COMMIT", "commit migration");
  }();
  if (!s.ok()) PgResult(internal::Exec(c, "ROLLBACK"));
  return s;
}

// A uuid's 16 bytes as PostgreSQL's text form.
std::string UuidText(std::string_view id) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < id.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[static_cast<unsigned char>(id[i]) >> 4];
    out += kHex[static_cast<unsigned char>(id[i]) & 15];
  }
  return out;
}

int64_t ClampToInt8(uint64_t v) {
  return static_cast<int64_t>(std::min<uint64_t>(v, std::numeric_limits<int64_t>::max()));
}

std::vector<Event> EventsOf(const PGresult* r) {
  std::vector<Event> out;
  const int n = PQntuples(r);
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    out.push_back({.position = static_cast<uint64_t>(internal::GetInt8(r, i, 0)),
                   .stream = internal::GetBytes(r, i, 1),
                   .stream_version = static_cast<uint64_t>(internal::GetInt8(r, i, 2)),
                   .type = internal::GetBytes(r, i, 3),
                   .payload = internal::GetBytes(r, i, 5),
                   .id = internal::GetBytes(r, i, 4),
                   .timestamp_ns = internal::GetInt8(r, i, 6)});
  }
  return out;
}

// One Append() on its way to the writer thread and back.
struct PgRequest {
  std::string_view stream;
  ExpectedVersion expected = ExpectedVersion::kAny;
  const std::vector<NewEvent>* events = nullptr;
  int64_t accept_ns = 0;
  absl::Status status;
  AppendResult result;
  bool done = false;  // guarded by Impl::mu_
};

}  // namespace

// The writer thread owns writer_conn_; the pool serves everything else.
class PostgresEventStore::Impl {
 public:
  explicit Impl(const PostgresOptions& o)
      : options_(o), pool_(o.conninfo, o.pool_size, [](PGconn* c) { return Prepare(c); }) {}
  ~Impl() { (void)Close(); }

  absl::Status Open();
  absl::Status Close();
  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      const std::vector<NewEvent>& events);
  absl::StatusOr<PgResult> Query(const char* name, const PgParams& params) const;
  absl::Status Health() const {
    std::lock_guard lk(mu_);
    if (closing_) return absl::UnavailableError("the event store is closed");
    return health_;
  }

  const PostgresOptions options_;
  mutable internal::PgPool pool_;

 private:
  void Loop();
  void ProcessBatch(std::vector<PgRequest*>& batch);
  // Inside the batch's transaction: r's checks and inserts; a non-OK return is a database error
  // (the transaction is lost); a request-level failure is left in r->status.
  absl::Status AppendOne(PgRequest* r, uint64_t* next_position, int64_t* last_ts);
  bool Duplicate(PgRequest* r, const PGresult* found);
  absl::Status WriterExec(const char* name, const PgParams& p, PgResult* out);

  internal::PgConnPtr writer_conn_;  // writer thread only (after Open)
  std::thread writer_;

  mutable std::mutex mu_;
  std::condition_variable queued_cv_;  // the writer waits for work
  std::condition_variable done_cv_;    // callers wait for their request
  std::deque<PgRequest*> queue_;       // guarded by mu_
  bool closing_ = false;               // guarded by mu_
  bool closed_ = false;                // guarded by mu_ (Close ran)
  absl::Status health_;                // guarded by mu_
};

absl::Status PostgresEventStore::Impl::Open() {
  // Migrations first, on a connection with nothing prepared: preparing needs the tables.
  {
    auto c = internal::PgPool::ConnectUnprepared(options_.conninfo);
    if (!c.ok()) return c.status();
    if (absl::Status s = Migrate(c->get()); !s.ok()) return s;
  }
  auto c = pool_.Connect();
  if (!c.ok()) return c.status();
  writer_conn_ = *std::move(c);
  writer_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

absl::Status PostgresEventStore::Impl::Close() {
  {
    std::lock_guard lk(mu_);
    if (closed_) return absl::OkStatus();
    closed_ = closing_ = true;
  }
  queued_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  writer_conn_.reset();
  return absl::OkStatus();
}

absl::StatusOr<AppendResult> PostgresEventStore::Impl::Append(std::string_view stream,
                                                              ExpectedVersion expected,
                                                              const std::vector<NewEvent>& events) {
  if (absl::Status s = internal::ValidateAppend(stream, events,
                                                {.max_stream_bytes = options_.max_stream_bytes,
                                                 .max_type_bytes = options_.max_type_bytes,
                                                 .max_payload_bytes = options_.max_payload_bytes},
                                                nullptr);
      !s.ok()) {
    return s;
  }
  PgRequest r{.stream = stream,
              .expected = expected,
              .events = &events,
              .accept_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count()};
  {
    std::unique_lock lk(mu_);
    if (closing_) return absl::FailedPreconditionError("the event store is closed");
    queue_.push_back(&r);
    queued_cv_.notify_one();
    done_cv_.wait(lk, [&r] { return r.done; });
  }
  if (!r.status.ok()) return r.status;
  return r.result;
}

void PostgresEventStore::Impl::Loop() {
  std::vector<PgRequest*> batch;
  for (;;) {
    batch.clear();
    {
      std::unique_lock lk(mu_);
      queued_cv_.wait(lk, [this] { return !queue_.empty() || closing_; });
      if (queue_.empty()) return;  // closing, and everything queued is done
      // Whatever queued while the last transaction ran commits together (group commit).
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(queue_.front());
        queue_.pop_front();
      }
    }
    ProcessBatch(batch);
    {
      std::lock_guard lk(mu_);
      for (PgRequest* r : batch) r->done = true;
    }
    done_cv_.notify_all();
  }
}

absl::Status PostgresEventStore::Impl::WriterExec(const char* name, const PgParams& p,
                                                  PgResult* out) {
  PgResult r = ExecPrepared(writer_conn_.get(), name, p);
  absl::Status s = PgStatus(writer_conn_.get(), r.get(), name);
  if (out != nullptr) *out = std::move(r);
  return s;
}

void PostgresEventStore::Impl::ProcessBatch(std::vector<PgRequest*>& batch) {
  auto fail_all = [&](const absl::Status& s) {
    for (PgRequest* r : batch) r->status = s;
    if (absl::IsUnavailable(s) || absl::IsUnknown(s)) {
      std::lock_guard lk(mu_);
      health_ = s;
    }
  };
  // An idle connection's death (server restart, idle timeout) shows only when it is used: if
  // BEGIN finds it dead, nothing was sent yet, so connect again and retry once.
  absl::Status begun;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (writer_conn_ == nullptr || PQstatus(writer_conn_.get()) != CONNECTION_OK) {
      writer_conn_.reset();
      auto c = pool_.Connect();
      if (!c.ok()) return fail_all(c.status());
      writer_conn_ = *std::move(c);
    }
    PgResult begin = internal::Exec(writer_conn_.get(), "BEGIN");
    begun = PgStatus(writer_conn_.get(), begin.get(), "begin");
    if (begun.ok() || PQstatus(writer_conn_.get()) == CONNECTION_OK) break;
  }
  if (!begun.ok()) return fail_all(begun);
  PGconn* c = writer_conn_.get();
  absl::Status s = [&]() -> absl::Status {
    // Held until COMMIT: appenders in every process take turns, so positions are assigned in
    // commit order and a reader of `global_position > x` never sees a gap that fills later.
    if (absl::Status s = WriterExec("lock", PgParams(), nullptr); !s.ok()) return s;
    // A statement of its own, after the lock's: under READ COMMITTED a statement's snapshot is
    // taken when it starts, so a max read in the locking statement could miss the commit of the
    // appender that held the lock before us.
    PgResult last;
    if (absl::Status s = WriterExec("last", PgParams(), &last); !s.ok()) return s;
    uint64_t next = 1;
    int64_t last_ts = 0;
    if (PQntuples(last.get()) == 1) {
      next = static_cast<uint64_t>(internal::GetInt8(last.get(), 0, 0)) + 1;
      last_ts = internal::GetInt8(last.get(), 0, 1);
    }
    for (PgRequest* r : batch) {
      if (absl::Status s = AppendOne(r, &next, &last_ts); !s.ok()) return s;
    }
    return absl::OkStatus();
  }();
  if (!s.ok()) {
    if (PQstatus(c) == CONNECTION_OK) PgResult(internal::Exec(c, "ROLLBACK"));
    return fail_all(s);
  }
  PgResult commit = internal::Exec(c, "COMMIT");
  if (absl::Status cs = PgStatus(c, commit.get(), "commit"); !cs.ok()) {
    if (PQstatus(c) != CONNECTION_OK) {
      return fail_all(absl::UnknownError(
          absl::StrCat(cs.message(),
                       " (the connection was lost during COMMIT: the batch may or may not be "
                       "stored; retry with event ids to find out)")));
    }
    return fail_all(cs);
  }
  // COMMIT can also report a rollback as a success with another command tag.
  if (std::string_view(PQcmdStatus(commit.get())) != "COMMIT") {
    return fail_all(absl::AbortedError("postgresql: the append transaction was rolled back"));
  }
  std::lock_guard lk(mu_);
  health_ = absl::OkStatus();
}

absl::Status PostgresEventStore::Impl::AppendOne(PgRequest* r, uint64_t* next_position,
                                                 int64_t* last_ts) {
  const std::vector<NewEvent>& events = *r->events;
  if (!events.front().id.empty()) {
    std::string ids = "{";
    for (const NewEvent& e : events) {
      if (ids.size() > 1) ids += ',';
      ids += UuidText(e.id);
    }
    ids += '}';
    PgResult found;
    if (absl::Status s = WriterExec("ids", PgParams().Bytes(r->stream).Text(ids), &found);
        !s.ok()) {
      return s;
    }
    if (Duplicate(r, found.get())) return absl::OkStatus();
  }
  PgResult v;
  if (absl::Status s = WriterExec("stream_version", PgParams().Bytes(r->stream), &v); !s.ok()) {
    return s;
  }
  uint64_t version = static_cast<uint64_t>(internal::GetInt8(v.get(), 0, 0));
  if (!r->expected.Matches(version)) {
    r->status = absl::FailedPreconditionError(
        absl::StrCat("wrong expected version for stream ", internal::Quote(r->stream),
                     ": expected ", r->expected.ToString(), ", actual ",
                     version == 0 ? std::string("no stream") : absl::StrCat(version)));
    return absl::OkStatus();
  }
  // Non-decreasing along positions, like the embedded store's.
  const int64_t ts = *last_ts = std::max(r->accept_ns, *last_ts);
  const uint64_t first = *next_position;
  for (const NewEvent& e : events) {
    PgParams p;
    p.Int8(static_cast<int64_t>((*next_position)++)).Bytes(r->stream);
    p.Int8(static_cast<int64_t>(++version)).Bytes(e.type);
    if (e.id.empty()) {
      p.Null();
    } else {
      p.Bytes(e.id);
    }
    p.Bytes(e.payload).Int8(ts);
    if (absl::Status s = WriterExec("insert", p, nullptr); !s.ok()) return s;
  }
  r->result = {.first_position = first,
               .last_position = *next_position - 1,
               .last_stream_version = version,
               .duplicate = false};
  return absl::OkStatus();
}

// The embedded store's rule (store/internal/writer.cc): the stream holds these ids as a run of
// consecutive versions in this order -> the original positions; any of them elsewhere -> refused.
bool PostgresEventStore::Impl::Duplicate(PgRequest* r, const PGresult* found) {
  const int rows = PQntuples(found);
  if (rows == 0) return false;
  struct At {
    uint64_t version, position;
  };
  std::unordered_map<std::string, At> at;
  for (int i = 0; i < rows; ++i) {
    at[internal::GetBytes(found, i, 2)] = {static_cast<uint64_t>(internal::GetInt8(found, i, 0)),
                                           static_cast<uint64_t>(internal::GetInt8(found, i, 1))};
  }
  const std::vector<NewEvent>& events = *r->events;
  auto first = at.find(events.front().id);
  bool same = first != at.end();
  for (size_t i = 0; same && i < events.size(); ++i) {
    auto it = at.find(events[i].id);
    same = it != at.end() && it->second.version == first->second.version + i;
  }
  if (same) {
    const At& last = at[events.back().id];
    r->result = {.first_position = first->second.position,
                 .last_position = last.position,
                 .last_stream_version = last.version,
                 .duplicate = true};
    return true;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (auto it = at.find(events[i].id); it != at.end()) {
      r->status = absl::FailedPreconditionError(absl::StrCat(
          "event #", i, "'s id is already in stream ", internal::Quote(r->stream), " at version ",
          it->second.version, ", but not as this same run of events: nothing written"));
      return true;
    }
  }
  return false;
}

absl::StatusOr<PgResult> PostgresEventStore::Impl::Query(const char* name,
                                                         const PgParams& params) const {
  // Reads are idempotent: a pooled connection found dead (server restart) is dropped with every
  // idle one, and the read retried once on a new connection.
  absl::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();
    PgResult r = ExecPrepared(lease->get(), name, params);
    s = PgStatus(lease->get(), r.get(), name);
    if (s.ok()) return r;
    if (PQstatus(lease->get()) == CONNECTION_OK) break;
    pool_.DropIdle();
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// PostgresEventStore

PostgresEventStore::PostgresEventStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PostgresEventStore::~PostgresEventStore() = default;

absl::StatusOr<std::unique_ptr<PostgresEventStore>> PostgresEventStore::Open(
    const PostgresOptions& options) {
  if (options.conninfo.empty()) return absl::InvalidArgumentError("conninfo is empty");
  if (options.max_batch == 0) return absl::InvalidArgumentError("max_batch must be > 0");
  if (options.max_stream_bytes == 0 || options.max_type_bytes == 0) {
    return absl::InvalidArgumentError("max_stream_bytes and max_type_bytes must be > 0");
  }
  auto impl = std::make_unique<Impl>(options);
  if (absl::Status s = impl->Open(); !s.ok()) return s;
  return std::unique_ptr<PostgresEventStore>(new PostgresEventStore(std::move(impl)));
}

absl::StatusOr<AppendResult> PostgresEventStore::Append(std::string_view stream,
                                                        ExpectedVersion expected,
                                                        std::vector<NewEvent> events) {
  return impl_->Append(stream, expected, events);
}

absl::StatusOr<std::vector<Event>> PostgresEventStore::ReadAll(uint64_t from_position,
                                                               size_t max) const {
  PgParams p;
  p.Int8(ClampToInt8(from_position == 0 ? 1 : from_position));
  if (max == kNoLimit) {
    p.Null();  // LIMIT NULL: no limit
  } else {
    p.Int8(ClampToInt8(max));
  }
  auto r = impl_->Query("read_all", p);
  if (!r.ok()) return r.status();
  return EventsOf(r->get());
}

absl::StatusOr<std::vector<Event>> PostgresEventStore::ReadStream(std::string_view stream,
                                                                  uint64_t from_version,
                                                                  size_t max) const {
  if (absl::Status s = internal::ValidateStreamId(stream, impl_->options_.max_stream_bytes);
      !s.ok()) {
    return s;
  }
  PgParams p;
  p.Bytes(stream).Int8(ClampToInt8(from_version == 0 ? 1 : from_version));
  if (max == kNoLimit) {
    p.Null();
  } else {
    p.Int8(ClampToInt8(max));
  }
  auto r = impl_->Query("read_stream", p);
  if (!r.ok()) return r.status();
  return EventsOf(r->get());
}

absl::StatusOr<uint64_t> PostgresEventStore::StreamVersion(std::string_view stream) const {
  if (absl::Status s = internal::ValidateStreamId(stream, impl_->options_.max_stream_bytes);
      !s.ok()) {
    return s;
  }
  auto r = impl_->Query("stream_version", PgParams().Bytes(stream));
  if (!r.ok()) return r.status();
  return static_cast<uint64_t>(internal::GetInt8(r->get(), 0, 0));
}

absl::Status PostgresEventStore::Health() const { return impl_->Health(); }

uint64_t PostgresEventStore::LastPosition() const {
  auto r = impl_->Query("last_position", PgParams());
  return r.ok() ? static_cast<uint64_t>(internal::GetInt8(r->get(), 0, 0)) : 0;
}

uint64_t PostgresEventStore::SizeBytes() const {
  auto r = impl_->Query("size", PgParams());
  return r.ok() ? static_cast<uint64_t>(internal::GetInt8(r->get(), 0, 0)) : 0;
}

absl::Status PostgresEventStore::Close() { return impl_->Close(); }

}  // namespace metrics::store
