#include "store/internal/index.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/internal/strings.h"
#include "store/internal/record.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;

// In-memory mode keeps records in chunks of this size (a larger batch gets a chunk of its own),
// so that publishing never moves bytes a reader may be copying.
constexpr size_t kMemoryChunkBytes = size_t{4} << 20;

absl::Status ReadAt(int fd, char* out, size_t n, uint64_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, out + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return absl::ErrnoToStatus(errno, "event store: reading a segment");
    if (r == 0) {
      return absl::DataLossError(absl::StrCat("event store: a segment ends at ", offset + done,
                                              ", before a published "
                                              "record's end at ",
                                              offset + n));
    }
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace

Index::~Index() {
  WriterLock lk(mu_);
  for (Segment& s : segments_) {
    if (s.fd >= 0) ::close(s.fd);
  }
}

absl::Status Index::AddSegment(uint64_t first_position, const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path, " for reading"));
  WriterLock lk(mu_);
  segments_.push_back(Segment{.first_position = first_position, .fd = fd});
  return absl::OkStatus();
}

void Index::Publish(const Batch& b) {
  if (b.events->empty()) return;
  WriterLock lk(mu_);
  uint64_t base = b.segment_offset;
  if (in_memory_) {
    if (segments_.empty() || segments_.back().end + b.length > segments_.back().capacity) {
      const size_t capacity = std::max<size_t>(kMemoryChunkBytes, b.length);
      segments_.push_back(Segment{.first_position = b.first_position,
                                  .mem = std::unique_ptr<char[]>(new char[capacity]),
                                  .capacity = capacity});
    }
    Segment& s = segments_.back();
    std::memcpy(s.mem.get() + s.end, b.records, b.length);
    base = s.end;
  }
  segments_.back().end = base + b.length;
  uint64_t p = b.first_position;
  std::string_view last_stream;
  std::vector<uint64_t>* positions = nullptr;
  for (const Placed& e : *b.events) {
    locations_.push_back(base + e.offset);
    if (positions == nullptr || e.stream != last_stream) {
      positions = &streams_[AV(e.stream)];
      last_stream = e.stream;
    }
    positions->push_back(p++);
  }
  size_bytes_.store(b.size_bytes, std::memory_order_relaxed);
  last_position_.store(p - 1, std::memory_order_release);  // pairs with LastPosition()
}

uint64_t Index::PublishedPositionWriter(std::string_view stream, uint64_t version) const {
  auto it = streams_.find(AV(stream));
  if (it == streams_.end() || version == 0 || version > it->second.size()) return 0;
  return it->second[version - 1];
}

const Index::Segment* Index::SegmentOf(uint64_t position) const {
  auto it = std::upper_bound(segments_.begin(), segments_.end(), position,
                             [](uint64_t p, const Segment& s) { return p < s.first_position; });
  return it == segments_.begin() ? nullptr : &*std::prev(it);
}

void Index::AddRun(uint64_t p, uint64_t n, std::vector<Run>* runs) const {
  const Segment* s = SegmentOf(p);
  const uint64_t last = p + n - 1;
  const uint64_t offset = locations_[p - 1];
  // The run ends where the next record starts, when that is in the same segment.
  const bool next_here = last < locations_.size() && SegmentOf(last + 1) == s;
  const uint64_t end = next_here ? locations_[last] : s->end;
  if (!runs->empty()) {
    Run& r = runs->back();
    if (r.segment == s && r.offset + r.bytes == offset) {
      r.bytes += end - offset;
      r.count += n;
      return;
    }
  }
  runs->push_back(Run{.segment = s, .offset = offset, .bytes = end - offset, .count = n});
}

absl::StatusOr<std::vector<Event>> Index::ReadAll(uint64_t from, size_t max) const {
  std::vector<Run> runs;
  {
    ReaderLock lk(mu_);
    const uint64_t total = locations_.size();
    if (from > total || max == 0) return std::vector<Event>();
    const uint64_t to = from + std::min<uint64_t>(total - from, max - 1);
    // One run per segment the range crosses.
    for (uint64_t p = from; p <= to;) {
      auto next =
          std::upper_bound(segments_.begin(), segments_.end(), p,
                           [](uint64_t x, const Segment& g) { return x < g.first_position; });
      const uint64_t last = next == segments_.end() ? to : std::min(to, next->first_position - 1);
      AddRun(p, last - p + 1, &runs);
      p = last + 1;
    }
  }
  return ReadRuns(runs);
}

absl::StatusOr<std::vector<Event>> Index::ReadStream(std::string_view stream, uint64_t from,
                                                     size_t max) const {
  std::vector<Run> runs;
  {
    ReaderLock lk(mu_);
    auto it = streams_.find(AV(stream));
    if (it == streams_.end() || from > it->second.size() || max == 0) return std::vector<Event>();
    const std::vector<uint64_t>& positions = it->second;
    const uint64_t n = std::min<uint64_t>(positions.size() - from + 1, max);
    for (uint64_t i = 0; i < n; ++i) AddRun(positions[from - 1 + i], 1, &runs);
  }
  return ReadRuns(runs);
}

uint64_t Index::StreamVersion(std::string_view stream) const {
  ReaderLock lk(mu_);
  auto it = streams_.find(AV(stream));
  return it == streams_.end() ? 0 : it->second.size();
}

absl::StatusOr<std::vector<Event>> Index::ReadRuns(const std::vector<Run>& runs) const {
  std::vector<Event> out;
  uint64_t total = 0;
  for (const Run& r : runs) total += r.count;
  out.reserve(total);
  std::string buf;
  for (const Run& r : runs) {
    const char* data;
    if (r.segment->mem != nullptr) {
      data = r.segment->mem.get() + r.offset;
    } else {
      buf.resize(r.bytes);
      if (absl::Status s = ReadAt(r.segment->fd, buf.data(), r.bytes, r.offset); !s.ok()) return s;
      data = buf.data();
    }
    uint64_t at = 0;
    for (uint64_t i = 0; i < r.count; ++i) {
      RecordView v;
      size_t frame = 0;
      const ParseStatus ps = ParseRecord(data + at, r.bytes - at, &v, &frame);
      if (ps != ParseStatus::kOk) {
        return absl::DataLossError(absl::StrCat(
            "event store: ", ParseStatusName(ps), " reading the record at offset ", r.offset + at,
            " of the segment from position ", r.segment->first_position));
      }
      out.push_back(Event{.position = v.position,
                          .stream = std::string(v.stream),
                          .stream_version = v.stream_version,
                          .type = std::string(v.type),
                          .payload = std::string(v.payload),
                          .id = std::string(v.id),
                          .timestamp_ns = v.timestamp_ns});
      at += frame;
    }
  }
  return out;
}

}  // namespace metrics::store::internal
