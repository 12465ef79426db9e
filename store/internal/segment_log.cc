#include "store/internal/segment_log.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/internal/strings.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;

constexpr std::string_view kPrefix = "segment-";
constexpr std::string_view kSuffix = ".log";
constexpr size_t kDigits = 20;

absl::Status Errno(int err, std::string_view what, std::string_view path) {
  return absl::ErrnoToStatus(err, absl::StrCat(AV(what), " ", AV(path)));
}

std::string Join(const std::string& dir, std::string_view name) {
  return absl::StrCat(dir, "/", AV(name));
}

// Parses "segment-<20 digits>.log"; false for any other name.
bool ParseSegmentName(std::string_view name, uint64_t* first) {
  if (name.size() != kPrefix.size() + kDigits + kSuffix.size()) return false;
  if (name.substr(0, kPrefix.size()) != kPrefix) return false;
  if (name.substr(kPrefix.size() + kDigits) != kSuffix) return false;
  uint64_t v = 0;
  for (char c : name.substr(kPrefix.size(), kDigits)) {
    if (c < '0' || c > '9') return false;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  *first = v;
  return true;
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open directory", dir);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Errno(err, "fsync directory", dir);
  return absl::OkStatus();
}

absl::Status ReadWholeFile(const std::string& path, std::string* out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno(errno, "open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno(err, "stat", path);
  }
  out->resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out->size()) {
    const ssize_t n = ::pread(fd, out->data() + done, out->size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Errno(err, "read", path);
    }
    if (n == 0) break;  // shrank under us
    done += static_cast<size_t>(n);
  }
  out->resize(done);
  ::close(fd);
  return absl::OkStatus();
}

// Offset of a valid record in data[from+1, end) whose position could follow `last_good`, or npos.
// The cheap checks (length range, fits, plausible position) run first so the CRC is rarely
// computed.
size_t FindValidRecordAfter(const std::string& data, size_t from, uint64_t last_good) {
  const size_t n = data.size();
  const uint64_t max_records = (n - from) / kMinFrameBytes + 1;
  for (size_t o = from + 1; o + kMinFrameBytes <= n; ++o) {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data() + o);
    const uint32_t body =
        uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    if (body < kMinBodyBytes || body > n - o - kFrameHeaderBytes) continue;
    uint64_t pos = 0;
    for (int i = 7; i >= 0; --i) pos = pos << 8 | p[kFrameHeaderBytes + i];
    pos &= kMaxPosition;  // without the sync mark
    if (pos <= last_good || pos - last_good > max_records) continue;
    RecordView r;
    size_t frame = 0;
    if (ParseRecord(data.data() + o, n - o, &r, &frame) == ParseStatus::kOk) return o;
  }
  return std::string::npos;
}

// Offset of a valid, sync-marked record after the bad one at `from`, or npos. Such a record was
// written once everything before it was durable, so the bad record is not a torn write.
size_t FindSyncMarkAfter(const std::string& data, size_t from, uint64_t last_good) {
  for (size_t o = FindValidRecordAfter(data, from, last_good); o != std::string::npos;) {
    RecordView r;
    size_t frame = 0;
    (void)ParseRecord(data.data() + o, data.size() - o, &r, &frame);
    if (r.sync_mark) return o;
    o = FindValidRecordAfter(data, o + frame - 1, last_good);
  }
  return std::string::npos;
}

}  // namespace

std::string SegmentLog::SegmentName(uint64_t first_position) {
  return absl::StrFormat("segment-%020u.log", first_position);
}

absl::StatusOr<std::unique_ptr<SegmentLog>> SegmentLog::Open(const Options& options,
                                                             const RecordFn& on_record,
                                                             RecoveryResult* result) {
  std::unique_ptr<SegmentLog> log(new SegmentLog(options));
  const std::string& dir = options.dir;
  // The deepest ancestor that exists already: create_directories may make several levels, and
  // each new entry survives a power loss only once the directory holding it is fsynced.
  std::error_code ec;
  std::filesystem::path top = std::filesystem::absolute(dir, ec);
  while (!ec && !std::filesystem::exists(top, ec) && top.has_parent_path() &&
         top.parent_path() != top) {
    top = top.parent_path();
  }
  const bool created = !std::filesystem::exists(dir, ec);
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create data directory ", dir, ": ", ec.message()));
  }
  if (created) {
    for (std::filesystem::path p = std::filesystem::absolute(dir, ec); !ec && p != top;) {
      p = p.parent_path();
      if (auto s = SyncDir(p.string()); !s.ok()) return s;
    }
  }

  const std::string lock_path = Join(dir, "LOCK");
  log->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (log->lock_fd_ < 0) return Errno(errno, "open", lock_path);
  if (::flock(log->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data directory ", dir, " is in use by another EventStore (", lock_path, " is locked)"));
    }
    return Errno(errno, "flock", lock_path);
  }

  // The segments, by first position.
  std::vector<std::pair<uint64_t, std::string>> segments;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Errno(errno, "open directory", dir);
  while (const dirent* e = ::readdir(d)) {
    uint64_t first = 0;
    if (ParseSegmentName(e->d_name, &first)) segments.emplace_back(first, e->d_name);
  }
  ::closedir(d);
  std::sort(segments.begin(), segments.end());

  *result = RecoveryResult();
  result->segments = segments.size();
  uint64_t expected = 1;  // position of the next record
  std::string data;
  for (size_t i = 0; i < segments.size(); ++i) {
    const bool last = i + 1 == segments.size();
    const std::string path = Join(dir, segments[i].second);
    if (segments[i].first != expected) {
      return absl::DataLossError(absl::StrCat(
          "segment ", path, " starts at position ", segments[i].first, " but the log continues at ",
          expected, i == 0 ? " (segments are missing at the start)" : " (a segment is missing)"));
    }
    if (auto s = ReadWholeFile(path, &data); !s.ok()) return s;
    log->segments_.push_back({.first_position = segments[i].first, .path = path});
    // A request's records reach on_record only once its ending record has been read: a request
    // cut short by a crash is dropped whole, never in part.
    std::vector<RecordView> request;
    size_t request_offset = 0;  // where the pending request's first record starts
    uint64_t request_first = expected;
    size_t offset = 0;
    // Cuts the segment back to `at` (a torn tail, or a request whose end never reached the disk).
    auto truncate = [&](size_t at, const char* why) -> absl::Status {
      const uint64_t dropped = data.size() - at;
      const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return Errno(errno, "open", path);
      if (::ftruncate(fd, static_cast<off_t>(at)) != 0 || ::fdatasync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        return Errno(err, "truncate torn tail of", path);
      }
      ::close(fd);
      std::fprintf(stderr,
                   "event store: recovery truncated a torn tail of %s: %llu bytes at offset %zu "
                   "(%s; last good position %llu)\n",
                   path.c_str(), static_cast<unsigned long long>(dropped), at, why,
                   static_cast<unsigned long long>(request_first - 1));
      result->truncated_bytes = dropped;
      result->truncated_file = path;
      result->truncated_offset = at;
      data.resize(at);
      return absl::OkStatus();
    };
    while (offset < data.size()) {
      RecordView r;
      size_t frame = 0;
      const ParseStatus ps = ParseRecord(data.data() + offset, data.size() - offset, &r, &frame);
      if (ps == ParseStatus::kOk) {
        if (r.position != expected) {
          return absl::DataLossError(absl::StrCat("segment ", path, ": record at offset ", offset,
                                                  " has position ", r.position, ", expected ",
                                                  expected));
        }
        if (request.empty()) {
          request_offset = offset;
          request_first = expected;
        }
        request.push_back(r);
        ++expected;
        offset += frame;
        if (!r.ends_request) continue;
        size_t at = request_offset;
        for (const RecordView& q : request) {
          if (absl::Status s = on_record(q, i, log->segments_[i], at); !s.ok()) {
            return absl::DataLossError(
                absl::StrCat("segment ", path, ": record at offset ", at, ": ", s.message()));
          }
          at += FramedSize(q.stream.size(), q.type.size(), q.payload.size(), q.id.size());
          ++result->records;
        }
        request.clear();
        request_first = expected;
        continue;
      }
      // A bad record. Only the end of the last segment may be torn.
      if (!last) {
        return absl::DataLossError(absl::StrCat(
            "segment ", path, ": ", ParseStatusName(ps), " at offset ", offset, " of ", data.size(),
            " bytes, in a segment that is not the last (position ", expected, ")"));
      }
      if (size_t mark = FindSyncMarkAfter(data, offset, expected - 1); mark != std::string::npos) {
        return absl::DataLossError(absl::StrCat(
            "segment ", path, ": ", ParseStatusName(ps), " at offset ", offset, " (position ",
            expected, "), before the durable watermark: the record at offset ", mark,
            " was written after every byte before it had been synced"));
      }
      // Torn tail: cut it off, with the whole records of its request before it.
      if (auto s = truncate(request.empty() ? offset : request_offset, ParseStatusName(ps));
          !s.ok()) {
        return s;
      }
      request.clear();
      break;
    }
    if (!request.empty()) {
      // The segment ends inside a request (its end was never written): in the last segment that
      // is a torn write; before it, a request never spans segments, so it is corruption.
      if (!last) {
        return absl::DataLossError(
            absl::StrCat("segment ", path, " ends inside a request (at position ", expected - 1,
                         "), in a segment that is not the last"));
      }
      if (auto s = truncate(request_offset, "request without its last record"); !s.ok()) return s;
    }
    expected = request_first;
    if (last) {
      log->current_path_ = path;
      log->current_size_ = data.size();
    } else {
      log->closed_bytes_ += data.size();
    }
  }

  if (segments.empty()) {
    log->current_path_ = Join(dir, SegmentName(1));
    log->segments_.push_back({.first_position = 1, .path = log->current_path_});
    const int fd =
        ::open(log->current_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Errno(errno, "create", log->current_path_);
    ::close(fd);
    if (auto s = SyncDir(dir); !s.ok()) return s;
    result->segments = 1;
  }
  log->fd_ = ::open(log->current_path_.c_str(), O_WRONLY | O_CLOEXEC);
  if (log->fd_ < 0) return Errno(errno, "open", log->current_path_);
  // What recovery read may have come from the page cache (after a kill -9): sync it, so that the
  // next write's sync mark tells the truth.
  if (log->current_size_ > 0 && ::fdatasync(log->fd_) != 0) {
    return Errno(errno, "fdatasync", log->current_path_);
  }
  log->synced_size_ = log->current_size_;
  return log;
}

SegmentLog::~SegmentLog() { (void)Close(); }

absl::Status SegmentLog::Roll(uint64_t first_position) {
  if (options_.sync_on_roll && ::fdatasync(fd_) != 0)
    return Errno(errno, "fdatasync", current_path_);
  const std::string path = Join(options_.dir, SegmentName(first_position));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno(errno, "create", path);
  if (options_.sync_on_roll) {
    if (auto s = SyncDir(options_.dir); !s.ok()) {
      // Leave no empty segment behind: recovery would read it as the log's continuation.
      ::close(fd);
      ::unlink(path.c_str());
      return s;
    }
  }
  ::close(fd_);
  fd_ = fd;
  current_path_ = path;
  closed_bytes_ += current_size_;
  current_size_ = 0;
  synced_size_ = 0;
  segments_.push_back({.first_position = first_position, .path = path});
  return absl::OkStatus();
}

absl::Status SegmentLog::Append(std::string* buffer, uint64_t first_position) {
  if (fd_ < 0) return absl::FailedPreconditionError("segment log is closed");
  const std::string_view bytes = *buffer;
  // Set first: when the roll fails, undoing this append must cut nothing (the segment holds only
  // acknowledged batches), not the previous append.
  append_start_ = current_size_;
  if (current_size_ > 0 && current_size_ + bytes.size() > options_.segment_bytes) {
    if (auto s = Roll(first_position); !s.ok()) return s;
    append_start_ = current_size_;
  }
  if (current_size_ == synced_size_ && bytes.size() >= kMinFrameBytes) {
    SetSyncMark(buffer->data());
  }
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd_, bytes.data() + done, bytes.size() - done,
                               static_cast<off_t>(current_size_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno(n < 0 ? errno : EIO, "write", current_path_);
    done += static_cast<size_t>(n);
  }
  current_size_ += bytes.size();
  return absl::OkStatus();
}

absl::Status SegmentLog::UndoLastAppend() {
  if (fd_ < 0) return absl::FailedPreconditionError("segment log is closed");
  if (::ftruncate(fd_, static_cast<off_t>(append_start_)) != 0) {
    return Errno(errno, "truncate (undoing a failed append)", current_path_);
  }
  if (::fdatasync(fd_) != 0)
    return Errno(errno, "fdatasync (undoing a failed append)", current_path_);
  current_size_ = append_start_;
  synced_size_ = append_start_;
  return absl::OkStatus();
}

absl::Status SegmentLog::Sync() {
  if (fd_ < 0) return absl::FailedPreconditionError("segment log is closed");
  if (::fdatasync(fd_) != 0) return Errno(errno, "fdatasync", current_path_);
  synced_size_ = current_size_;
  return absl::OkStatus();
}

absl::Status SegmentLog::Close() {
  absl::Status status;
  if (fd_ >= 0) {
    if (::fdatasync(fd_) != 0) status = Errno(errno, "fdatasync", current_path_);
    ::close(fd_);
    fd_ = -1;
  }
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
  return status;
}

}  // namespace metrics::store::internal
