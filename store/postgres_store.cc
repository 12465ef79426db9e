#include "store/postgres_store.h"

#include <endian.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <mutex>
#include <optional>
#include <semaphore>
#include <thread>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "store/internal/append_validation.h"
#include "store/internal/pg_listener.h"
#include "store/internal/pg_metrics.h"
#include "store/internal/pg_pool.h"
#include "store/internal/store_metrics.h"

namespace metrics::store {
namespace {

using internal::ExecPrepared;
using internal::PgParams;
using internal::PgResult;
using internal::PgStatus;

constexpr Oid kInt8 = 20, kText = 25, kBytea = 17, kUuid = 2950;
constexpr Oid kInt8Array = 1016, kTextArray = 1009, kByteaArray = 1001, kUuidArray = 2951;

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
      // Held until COMMIT: appenders in every process take turns, so positions are given in
      // commit order and a reader of `global_position > x` never sees a gap that fills later.
      {"lock",
       absl::StrCat("SELECT pg_advisory_xact_lock(", PostgresEventStore::kLockClass, ", ",
                    PostgresEventStore::kAppendLockKey, ")"),
       {}},
      // A statement of its own after the lock's: under READ COMMITTED a statement's snapshot is
      // taken when it starts, so a read in the locking statement could miss the commit of the
      // appender that held the lock before.
      {"last",
       "SELECT global_position, time_ns FROM messages ORDER BY global_position DESC LIMIT 1",
       {}},
      {"insert",
       absl::StrCat("INSERT INTO messages (", kColumns,
                    ") SELECT * FROM unnest($1, $2, $3, $4, $5, $6, $7)"),
       {kInt8Array, kTextArray, kInt8Array, kTextArray, kUuidArray, kByteaArray, kInt8Array}},
      // Delivered at COMMIT to every LISTEN eventstore_appended (internal/pg_listener.h).
      {"notify", "SELECT pg_notify('eventstore_appended', $1)", {kText}},
      // Per stream one backward index-only probe (a max() over `stream = ANY($1)` would read
      // every event of those streams: 4.7 ms for a 3,125-event stream, against 0.07 ms).
      {"versions",
       "SELECT s.stream, m.v FROM unnest($1) AS s(stream) CROSS JOIN LATERAL (SELECT "
       "stream_version AS v FROM messages WHERE messages.stream = s.stream ORDER BY "
       "stream_version DESC LIMIT 1) m",
       {kTextArray}},
      {"stream_version",
       "SELECT coalesce(max(stream_version), 0)::bigint FROM messages WHERE stream = $1",
       {kText}},
      // ($1[i], $2[i]) pairs, each one probe of messages_stream_id.
      {"ids",
       "SELECT m.stream, m.stream_version, m.global_position, m.id FROM unnest($1, $2) AS "
       "k(stream, id) JOIN messages m ON m.stream = k.stream AND m.id = k.id",
       {kTextArray, kUuidArray}},
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
  // Every statement here has one good plan whatever its parameters; planning it afresh for each
  // of the first executions (PostgreSQL's default) cost the append 57 us of its ~400.
  PgResult set(internal::Exec(c, "SET plan_cache_mode = force_generic_plan"));
  if (absl::Status s = PgStatus(c, set.get(), "set plan_cache_mode"); !s.ok()) return s;
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
  if (!s.ok()) internal::Exec(c, "ROLLBACK");
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

// Where a stored (or staged) event with an id sits.
struct StoredAt {
  uint64_t version, position;
};

// Stream ids hold no NUL: stream + NUL + the 16 id bytes names an id within its stream.
std::string IdKey(std::string_view stream, std::string_view id) {
  std::string key(stream);
  key += '\0';
  key += id;
  return key;
}

// A text-format array literal. Stream ids ([A-Za-z0-9._:-]) and UUID text need no escaping
// inside double quotes.
std::string ArrayLiteral(const std::vector<std::string_view>& items) {
  std::string out = "{";
  for (std::string_view item : items) {
    if (out.size() > 1) out += ',';
    out += '"';
    out += item;
    out += '"';
  }
  out += '}';
  return out;
}

// The rows of a batch as seven arrays in PostgreSQL's binary array format, one per column, for
// `INSERT ... SELECT * FROM unnest($1, ..., $7)`: one statement for any number of rows.
class ColumnArrays {
 public:
  void Row(int64_t position, std::string_view stream, int64_t version, std::string_view type,
           std::string_view id, std::string_view payload, int64_t time_ns) {
    Int8(&columns_[0], position);
    Bytes(&columns_[1], stream);
    Int8(&columns_[2], version);
    Bytes(&columns_[3], type);
    if (id.empty()) {
      Int32(&columns_[4], -1);  // NULL
      id_nulls_ = true;
    } else {
      Bytes(&columns_[4], id);  // a uuid's binary form is its 16 bytes
    }
    Bytes(&columns_[5], payload);
    Int8(&columns_[6], time_ns);
    ++count_;
  }
  size_t count() const { return count_; }

  // The insert statement's parameters: each array is a header (one dimension of count() elements
  // from index 1, the element type) and the elements, each a length (-1: NULL) and its bytes.
  PgParams Params() const {
    static constexpr Oid kElementTypes[kColumnCount] = {kInt8, kText,  kInt8, kText,
                                                        kUuid, kBytea, kInt8};
    PgParams p;
    for (size_t i = 0; i < kColumnCount; ++i) {
      std::string array;
      Int32(&array, 1);                            // dimensions
      Int32(&array, i == 4 && id_nulls_ ? 1 : 0);  // has NULLs
      Int32(&array, static_cast<int32_t>(kElementTypes[i]));
      Int32(&array, static_cast<int32_t>(count_));  // elements
      Int32(&array, 1);                             // lower bound
      array += columns_[i];
      p.Bytes(array);
    }
    return p;
  }

 private:
  static constexpr size_t kColumnCount = 7;
  static void Int32(std::string* out, int32_t v) {
    const uint32_t be = htobe32(static_cast<uint32_t>(v));
    out->append(reinterpret_cast<const char*>(&be), sizeof(be));
  }
  static void Int8(std::string* out, int64_t v) {
    Int32(out, 8);
    const uint64_t be = htobe64(static_cast<uint64_t>(v));
    out->append(reinterpret_cast<const char*>(&be), sizeof(be));
  }
  static void Bytes(std::string* out, std::string_view v) {
    Int32(out, static_cast<int32_t>(v.size()));  // payloads are limited far below 2 GiB
    out->append(v);
  }
  std::string columns_[kColumnCount];
  bool id_nulls_ = false;
  size_t count_ = 0;
};

// The first round trip of an append or import transaction: BEGIN, the append lock, the last
// event, and the current version of each stream `versions` names (results 2 and 3: ReadTail).
std::vector<internal::PipelineStep> OpenSteps(const PgParams& versions) {
  return {{.sql = "BEGIN"},
          {.name = "lock"},
          {.name = "last"},
          {.name = "versions", .params = &versions}};
}

// Where the store ends, as OpenSteps' results say: the next position, the last timestamp, and
// the version of each stream asked about (absent: no stream).
struct StoreTail {
  uint64_t next_position = 1;
  int64_t last_ts = 0;
  std::unordered_map<std::string, uint64_t> versions;
};
StoreTail ReadTail(const internal::PipelineResult& opened) {
  StoreTail t;
  if (const PGresult* last = opened.results[2].get(); PQntuples(last) == 1) {
    t.next_position = static_cast<uint64_t>(internal::GetInt8(last, 0, 0)) + 1;
    t.last_ts = internal::GetInt8(last, 0, 1);
  }
  const PGresult* v = opened.results[3].get();
  for (int i = 0; i < PQntuples(v); ++i) {
    t.versions[internal::GetBytes(v, i, 0)] = static_cast<uint64_t>(internal::GetInt8(v, i, 1));
  }
  return t;
}

// One Append() on its way to the writer thread and back.
struct PgRequest {
  std::string_view stream;
  ExpectedVersion expected = ExpectedVersion::kAny;
  const std::vector<NewEvent>* events = nullptr;
  int64_t accept_ns = 0;
  absl::Status status;
  AppendResult result;
  // Released by the writer once status/result are set (the release orders those writes before
  // the caller's acquire). One per request: waking only its own caller, not every waiter.
  std::binary_semaphore done{0};
};

}  // namespace

// Each writer thread owns its connection (writer_conns_[w]); the pool serves everything else.
class PostgresEventStore::Impl {
 public:
  // The metrics may be null (no registry).
  Impl(const PostgresOptions& o, std::unique_ptr<internal::StoreMetrics> metrics,
       std::unique_ptr<internal::PgMetrics> pg_metrics)
      : options_(o),
        metrics_(std::move(metrics)),
        pg_metrics_(std::move(pg_metrics)),
        pool_(
            o.conninfo, o.pool_size, [](PGconn* c) { return Prepare(c); }, pg_metrics_.get()) {}
  ~Impl() { (void)Close(); }

  absl::Status Open();
  absl::Status Close();
  absl::StatusOr<AppendResult> Append(std::string_view stream, ExpectedVersion expected,
                                      const std::vector<NewEvent>& events);
  absl::StatusOr<PgResult> Query(const char* name, const PgParams& params) const;
  absl::Status Import(const std::vector<Event>& events);
  absl::Status Health() const {
    std::lock_guard lk(mu_);
    if (closing_) return absl::UnavailableError("the event store is closed");
    return health_;
  }

  // Every error PostgreSQL or libpq reported, retried or not (pg_errors_total).
  void CountError(const absl::Status& s) const {
    if (!s.ok() && pg_metrics_ != nullptr) pg_metrics_->CountError(s);
  }

  const PostgresOptions options_;
  const std::unique_ptr<internal::StoreMetrics> metrics_;
  const std::unique_ptr<internal::PgMetrics> pg_metrics_;
  mutable internal::PgPool pool_;
  mutable internal::PgListener listener_{options_.conninfo};

 private:
  void Loop(size_t writer);
  // On `conn` (reconnected when found dead or left in an unknown state).
  void ProcessBatch(internal::PgConnPtr& conn, std::vector<PgRequest*>& batch);
  // The parameters of the "versions" and "ids" statements for the batch (no ids: nullopt).
  static PgParams VersionsParams(const std::vector<PgRequest*>& batch);
  static std::optional<PgParams> IdsParams(const std::vector<PgRequest*>& batch);
  // r's checks against the maps; on success its rows go to `rows` and the maps learn them. A
  // request-level failure (version, id) is left in r->status.
  void Stage(PgRequest* r, std::unordered_map<std::string, uint64_t>* versions,
             std::unordered_map<std::string, StoredAt>* ids, uint64_t* next_position,
             int64_t* last_ts, ColumnArrays* rows);
  bool Duplicate(PgRequest* r, const std::unordered_map<std::string, StoredAt>& ids);

  std::vector<internal::PgConnPtr> writer_conns_;  // [w]: writer thread w only (after Open)
  // The metrics' writer-side state: several writers take turns.
  static constexpr std::chrono::seconds kSizeEvery{5};
  std::mutex metrics_mu_;
  std::chrono::steady_clock::time_point next_size_read_;  // guarded by metrics_mu_
  uint64_t last_size_ = 0;                                // guarded by metrics_mu_
  std::vector<std::thread> writers_;

  mutable std::mutex mu_;
  std::condition_variable queued_cv_;  // the writer waits for work
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
  writer_conns_.resize(options_.writers);
  for (internal::PgConnPtr& conn : writer_conns_) {
    auto c = pool_.Connect();
    if (!c.ok()) return c.status();
    conn = *std::move(c);
  }
  if (metrics_ != nullptr) {
    auto size = Query("size", PgParams());
    if (size.ok()) metrics_->SetSize(static_cast<uint64_t>(internal::GetInt8(size->get(), 0, 0)));
  }
  for (size_t w = 0; w < options_.writers; ++w) writers_.emplace_back([this, w] { Loop(w); });
  return absl::OkStatus();
}

absl::Status PostgresEventStore::Impl::Close() {
  {
    std::lock_guard lk(mu_);
    if (closed_) return absl::OkStatus();
    closed_ = closing_ = true;
  }
  queued_cv_.notify_all();
  for (std::thread& t : writers_) t.join();
  writers_.clear();
  writer_conns_.clear();
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
  }
  queued_cv_.notify_one();
  r.done.acquire();
  if (!r.status.ok()) return r.status;
  return r.result;
}

void PostgresEventStore::Impl::Loop(size_t writer) {
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
    ProcessBatch(writer_conns_[writer], batch);
    for (PgRequest* r : batch) r->done.release();  // r may be gone after this
  }
}

void PostgresEventStore::Impl::ProcessBatch(internal::PgConnPtr& conn,
                                            std::vector<PgRequest*>& batch) {
  auto fail_all = [&](const absl::Status& s) {
    for (PgRequest* r : batch) r->status = s;
    if (absl::IsUnavailable(s) || absl::IsUnknown(s)) {
      std::lock_guard lk(mu_);
      health_ = s;
    }
  };
  // Round trip 1: open the transaction, take the append lock, read the last event and what
  // every request is checked against (its stream's version, where its ids already are).
  const PgParams versions_params = VersionsParams(batch);
  const std::optional<PgParams> ids_params = IdsParams(batch);
  std::vector<internal::PipelineStep> open = OpenSteps(versions_params);
  if (ids_params) open.push_back({.name = "ids", .params = &*ids_params});
  // event_store_size_bytes: the table's size, read along with the batch now and then.
  bool read_size = false;
  if (metrics_ != nullptr) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lk(metrics_mu_);
    if (now >= next_size_read_) {
      next_size_read_ = now + kSizeEvery;
      read_size = true;
      open.push_back({.name = "size"});
    }
  }
  // An idle connection's death (server restart, idle timeout) shows only when it is used: if the
  // first round trip finds it dead, nothing was stored, so connect again and retry once.
  internal::PipelineResult opened;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (conn == nullptr || PQstatus(conn.get()) != CONNECTION_OK) {
      conn.reset();
      auto c = pool_.Connect();
      if (!c.ok()) {
        CountError(c.status());
        return fail_all(c.status());
      }
      conn = *std::move(c);
    }
    opened = internal::RunPipeline(conn.get(), open);
    CountError(opened.status);
    if (opened.status.ok() || PQstatus(conn.get()) == CONNECTION_OK) break;
  }
  PGconn* c = conn.get();
  // After a failure: roll back, and give up a connection left in an unknown state.
  auto abandon = [&](const absl::Status& s) {
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_INERROR) {
      internal::Exec(c, "ROLLBACK");
    }
    if (PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE ||
        PQpipelineStatus(c) != PQ_PIPELINE_OFF) {
      conn.reset();
    }
    fail_all(s);
  };
  if (!opened.status.ok()) return abandon(opened.status);

  // The checks run here; later requests of the batch see the earlier ones' events in the maps.
  StoreTail tail = ReadTail(opened);
  uint64_t next = tail.next_position;
  int64_t last_ts = tail.last_ts;
  std::unordered_map<std::string, uint64_t>& versions = tail.versions;
  std::unordered_map<std::string, StoredAt> ids;
  if (ids_params) {
    const PGresult* found = opened.results[4].get();
    for (int i = 0; i < PQntuples(found); ++i) {
      ids[IdKey(internal::GetBytes(found, i, 0), internal::GetBytes(found, i, 3))] = {
          static_cast<uint64_t>(internal::GetInt8(found, i, 1)),
          static_cast<uint64_t>(internal::GetInt8(found, i, 2))};
    }
  }
  ColumnArrays rows;
  for (PgRequest* r : batch) Stage(r, &versions, &ids, &next, &last_ts, &rows);

  // Round trip 2: every row in one INSERT, and COMMIT.
  const PgParams insert_params = rows.Params();
  const PgParams notify_params = std::move(PgParams().Text(absl::StrCat(next - 1)));
  std::vector<internal::PipelineStep> close;
  if (rows.count() > 0) {
    close.push_back({.name = "insert", .params = &insert_params});
    close.push_back({.name = "notify", .params = &notify_params});
  }
  close.push_back({.sql = "COMMIT"});
  internal::PipelineResult committed = internal::RunPipeline(c, close);
  CountError(committed.status);
  if (!committed.status.ok()) {
    if (PQstatus(c) != CONNECTION_OK) {
      // COMMIT may have been sent, and run, before the connection failed.
      return abandon(absl::UnknownError(
          absl::StrCat(committed.status.message(),
                       " (the connection was lost during COMMIT: the batch may or may not be "
                       "stored; retry with event ids to find out)")));
    }
    return abandon(committed.status);
  }
  // COMMIT can also report a rollback as a success with another command tag.
  if (std::string_view(PQcmdStatus(committed.results.back().get())) != "COMMIT") {
    return abandon(absl::AbortedError("postgresql: the append transaction was rolled back"));
  }
  if (metrics_ != nullptr) {
    std::lock_guard lk(metrics_mu_);  // StoreMetrics' calls are for one thread at a time
    if (read_size) {
      last_size_ = static_cast<uint64_t>(internal::GetInt8(opened.results.back().get(), 0, 0));
    }
    const int64_t end_ns = internal::StoreMetrics::Now();
    uint64_t payload = 0;
    for (const PgRequest* r : batch) {
      if (!r->status.ok() || r->result.duplicate) continue;
      for (const NewEvent& e : *r->events) {
        metrics_->CountEvent(e.type);
        payload += e.payload.size();
      }
      metrics_->Released(end_ns, r->accept_ns, r->result.first_position);
    }
    metrics_->BatchStored(payload, last_size_);
  }
  std::lock_guard lk(mu_);
  health_ = absl::OkStatus();
}

PgParams PostgresEventStore::Impl::VersionsParams(const std::vector<PgRequest*>& batch) {
  std::vector<std::string_view> streams;
  for (const PgRequest* r : batch) streams.push_back(r->stream);
  return std::move(PgParams().Text(ArrayLiteral(streams)));
}

std::optional<PgParams> PostgresEventStore::Impl::IdsParams(const std::vector<PgRequest*>& batch) {
  std::vector<std::string_view> streams;  // one per id
  std::vector<std::string> uuids;
  for (const PgRequest* r : batch) {
    for (const NewEvent& e : *r->events) {
      if (e.id.empty()) break;  // all or none
      streams.push_back(r->stream);
      uuids.push_back(UuidText(e.id));
    }
  }
  if (uuids.empty()) return std::nullopt;
  PgParams p;
  p.Text(ArrayLiteral(streams))
      .Text(ArrayLiteral(std::vector<std::string_view>(uuids.begin(), uuids.end())));
  return p;
}

void PostgresEventStore::Impl::Stage(PgRequest* r,
                                     std::unordered_map<std::string, uint64_t>* versions,
                                     std::unordered_map<std::string, StoredAt>* ids,
                                     uint64_t* next_position, int64_t* last_ts,
                                     ColumnArrays* rows) {
  const std::vector<NewEvent>& events = *r->events;
  const bool with_ids = !events.front().id.empty();
  if (with_ids && Duplicate(r, *ids)) return;
  uint64_t& version = (*versions)[std::string(r->stream)];  // 0 when the stream is new
  if (!r->expected.Matches(version)) {
    r->status = absl::FailedPreconditionError(
        absl::StrCat("wrong expected version for stream ", internal::Quote(r->stream),
                     ": expected ", r->expected.ToString(), ", actual ",
                     version == 0 ? std::string("no stream") : absl::StrCat(version)));
    return;
  }
  // Non-decreasing along positions, like the embedded store's.
  const int64_t ts = *last_ts = std::max(r->accept_ns, *last_ts);
  const uint64_t first = *next_position;
  for (const NewEvent& e : events) {
    const uint64_t position = (*next_position)++;
    ++version;
    rows->Row(static_cast<int64_t>(position), r->stream, static_cast<int64_t>(version), e.type,
              e.id, e.payload, ts);
    if (with_ids) (*ids)[IdKey(r->stream, e.id)] = {version, position};
  }
  r->result = {.first_position = first,
               .last_position = *next_position - 1,
               .last_stream_version = version,
               .duplicate = false};
}

// The embedded store's rule (store/internal/writer.cc): the stream holds these ids as a run of
// consecutive versions in this order -> the original positions; any of them elsewhere -> refused.
bool PostgresEventStore::Impl::Duplicate(PgRequest* r,
                                         const std::unordered_map<std::string, StoredAt>& ids) {
  const std::vector<NewEvent>& events = *r->events;
  auto find = [&](const std::string& id) -> const StoredAt* {
    auto it = ids.find(IdKey(r->stream, id));
    return it == ids.end() ? nullptr : &it->second;
  };
  const StoredAt* first = find(events.front().id);
  bool same = first != nullptr;
  for (size_t i = 0; same && i < events.size(); ++i) {
    const StoredAt* at = find(events[i].id);
    same = at != nullptr && at->version == first->version + i;
  }
  if (same) {
    const StoredAt* last = find(events.back().id);
    r->result = {.first_position = first->position,
                 .last_position = last->position,
                 .last_stream_version = last->version,
                 .duplicate = true};
    return true;
  }
  for (size_t i = 0; i < events.size(); ++i) {
    if (const StoredAt* at = find(events[i].id)) {
      r->status = absl::FailedPreconditionError(absl::StrCat(
          "event #", i, "'s id is already in stream ", internal::Quote(r->stream), " at version ",
          at->version, ", but not as this same run of events: nothing written"));
      return true;
    }
  }
  return false;
}

absl::Status PostgresEventStore::Impl::Import(const std::vector<Event>& events) {
  if (events.empty()) return absl::OkStatus();
  for (const Event& e : events) {
    if (absl::Status s = internal::ValidateAppend(
            e.stream, {NewEvent{.type = e.type, .payload = e.payload, .id = e.id}},
            {.max_stream_bytes = options_.max_stream_bytes,
             .max_type_bytes = options_.max_type_bytes,
             .max_payload_bytes = options_.max_payload_bytes},
            nullptr);
        !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("event at position ", e.position, ": ", s.message()));
    }
  }
  auto lease = pool_.Acquire();
  if (!lease.ok()) return lease.status();
  PGconn* c = lease->get();
  std::vector<std::string_view> streams;
  for (const Event& e : events) streams.push_back(e.stream);
  const PgParams versions_params = std::move(PgParams().Text(ArrayLiteral(streams)));
  // The append lock, as a writer takes it: imports and appends take turns.
  internal::PipelineResult opened = internal::RunPipeline(c, OpenSteps(versions_params));
  CountError(opened.status);
  auto rollback = [c] {
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
      internal::Exec(c, "ROLLBACK");
    }
  };
  if (!opened.status.ok()) {
    rollback();
    return opened.status;
  }
  StoreTail tail = ReadTail(opened);
  uint64_t next = tail.next_position;
  int64_t last_ts = tail.last_ts;
  std::unordered_map<std::string, uint64_t>& versions = tail.versions;
  // The events must continue the store exactly: what an append would have assigned.
  ColumnArrays rows;
  for (const Event& e : events) {
    uint64_t& version = versions[e.stream];
    if (e.position != next || e.stream_version != version + 1 || e.timestamp_ns < last_ts) {
      rollback();
      return absl::InvalidArgumentError(absl::StrCat(
          "event at position ", e.position, " (stream ", internal::Quote(e.stream), " version ",
          e.stream_version, ") does not continue the store: expected position ", next, ", version ",
          version + 1, ", a timestamp not before ", last_ts));
    }
    ++next;
    ++version;
    last_ts = e.timestamp_ns;
    rows.Row(static_cast<int64_t>(e.position), e.stream, static_cast<int64_t>(e.stream_version),
             e.type, e.id, e.payload, e.timestamp_ns);
  }
  const PgParams insert_params = rows.Params();
  const PgParams notify_params = std::move(PgParams().Text(absl::StrCat(next - 1)));
  internal::PipelineResult committed =
      internal::RunPipeline(c, {{.name = "insert", .params = &insert_params},
                                {.name = "notify", .params = &notify_params},
                                {.sql = "COMMIT"}});
  CountError(committed.status);
  if (!committed.status.ok()) {
    rollback();
    return committed.status;
  }
  if (std::string_view(PQcmdStatus(committed.results.back().get())) != "COMMIT") {
    return absl::AbortedError("postgresql: the import transaction was rolled back");
  }
  return absl::OkStatus();
}

absl::StatusOr<PgResult> PostgresEventStore::Impl::Query(const char* name,
                                                         const PgParams& params) const {
  // Reads are idempotent: a pooled connection found dead (server restart) is dropped with every
  // idle one, and the read retried once on a new connection.
  absl::Status s;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto lease = pool_.Acquire();
    if (!lease.ok()) return lease.status();  // counted by the pool
    PgResult r = ExecPrepared(lease->get(), name, params);
    s = PgStatus(lease->get(), r.get(), name);
    if (s.ok()) return r;
    CountError(s);
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
  if (options.writers == 0 || options.writers > 16) {
    return absl::InvalidArgumentError("writers must be 1..16");
  }
  if (options.max_stream_bytes == 0 || options.max_type_bytes == 0) {
    return absl::InvalidArgumentError("max_stream_bytes and max_type_bytes must be > 0");
  }
  std::unique_ptr<internal::StoreMetrics> metrics;
  std::unique_ptr<internal::PgMetrics> pg_metrics;
  if (options.registry != nullptr) {
    auto m = internal::StoreMetrics::Create(*options.registry, options.max_event_types);
    if (!m.ok()) return m.status();
    metrics = *std::move(m);
    auto pm = internal::PgMetrics::Create(*options.registry);
    if (!pm.ok()) return pm.status();
    pg_metrics = *std::move(pm);
  }
  auto impl = std::make_unique<Impl>(options, std::move(metrics), std::move(pg_metrics));
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

absl::StatusOr<uint64_t> PostgresEventStore::ImportFrom(
    const EventBackend& source, const std::function<void(uint64_t, uint64_t)>& progress) {
  constexpr size_t kPage = 1000;
  const uint64_t total = source.LastPosition();
  uint64_t have = LastPosition();  // 0 when unreachable too: Import() then says so
  if (have > total) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the database holds ", have, " events, the source only ", total, ": not a copy of it"));
  }
  if (have > 0) {  // a resumed import: the last event copied must be the source's
    auto mine = ReadAll(have, 1);
    if (!mine.ok()) return mine.status();
    auto theirs = source.ReadAll(have, 1);
    if (!theirs.ok()) return theirs.status();
    if (mine->size() != 1 || theirs->size() != 1 || (*mine)[0] != (*theirs)[0]) {
      return absl::FailedPreconditionError(
          absl::StrCat("the database's event at position ", have,
                       " differs from the source's: it holds another store's events"));
    }
  }
  uint64_t copied = 0;
  while (have < total) {
    auto page = source.ReadAll(have + 1, kPage);
    if (!page.ok()) return page.status();
    if (page->empty()) break;
    if (absl::Status s = impl_->Import(*page); !s.ok()) return s;
    have = page->back().position;
    copied += page->size();
    if (progress) progress(have, total);
  }
  return copied;
}

bool PostgresEventStore::WaitForEvents(uint64_t after_position,
                                       std::chrono::milliseconds timeout) const {
  return impl_->listener_.WaitBeyond(after_position, timeout);
}

absl::Status PostgresEventStore::Close() { return impl_->Close(); }

}  // namespace metrics::store
