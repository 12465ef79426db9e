// The store's memory and recovery as a large store meets them: fills a data directory with N
// events, reopens it (recovery rebuilds the index from the segment files), and reports resident
// memory per stored event, recovery time, and the cost of reads by stream and by position.
//
//   build/bench/store_memory_bench --events 1000000 [--payload 100] [--streams 1000] [--ids]
//                                  [--dir /tmp/x] [--keep]
//
// A benchmark, not a test: it prints figures (one line of `key=value`s) and asserts nothing but
// that every event came back. Resident memory is read from /proc/self/statm after malloc_trim,
// before and after Open; the difference is what the open store holds.
#include <malloc.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "store/event_store.h"

namespace {

using metrics::store::EventStore;
using metrics::store::ExpectedVersion;
using metrics::store::FsyncPolicy;
using metrics::store::NewEvent;
using Clock = std::chrono::steady_clock;

double ResidentBytes() {
  malloc_trim(0);
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

int Fail(const std::string& what) {
  std::fprintf(stderr, "store_memory_bench: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 1'000'000, payload = 100, streams = 1000;
  bool ids = false, keep = false;
  std::string dir;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--events")
      events = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--payload")
      payload = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--streams")
      streams = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--ids")
      ids = true;
    else if (a == "--keep")
      keep = true;
    else if (a == "--dir")
      dir = next();
    else
      return Fail("usage: --events N [--payload B] [--streams S] [--ids] [--dir D] [--keep]");
  }
  if (events == 0 || streams == 0) return Fail("--events and --streams must be > 0");
  if (dir.empty()) {
    char tmpl[] = "/tmp/store_memory_bench_XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return Fail("mkdtemp failed");
    dir = tmpl;
  }

  // 1. Fill: requests of 100 events, streams round-robin, acknowledged after the write.
  const auto fill_start = Clock::now();
  {
    auto store = EventStore::Open({.data_dir = dir, .fsync = FsyncPolicy::kNever});
    if (!store.ok()) return Fail(store.status().ToString());
    std::string body(payload, 'x');
    uint64_t n = 0, id = 0;
    while (n < events) {
      const uint64_t k = std::min<uint64_t>(100, events - n);
      std::vector<NewEvent> batch(k);
      for (NewEvent& e : batch) {
        e.type = "team.registered";
        e.payload = body;
        if (ids) {
          e.id.assign(16, '\0');
          ++id;
          std::memcpy(e.id.data(), &id, sizeof id);
        }
      }
      auto r = (*store)->Append(absl::StrCat("stream-", (n / 100) % streams), ExpectedVersion::kAny,
                                std::move(batch));
      if (!r.ok()) return Fail(r.status().ToString());
      n += k;
    }
    if (auto s = (*store)->Close(); !s.ok()) return Fail(s.ToString());
  }
  const double fill_s = Seconds(Clock::now() - fill_start);

  // 2. Reopen: recovery rebuilds the index; what stays resident is the index.
  const double before = ResidentBytes();
  const auto open_start = Clock::now();
  auto store = EventStore::Open({.data_dir = dir, .fsync = FsyncPolicy::kNever});
  if (!store.ok()) return Fail(store.status().ToString());
  const double recovery_s = Seconds(Clock::now() - open_start);
  const double after = ResidentBytes();
  if ((*store)->LastPosition() != events) return Fail("recovered a different number of events");

  // 3. Reads: pages of 100 by position and of 10 by stream, from random starting points.
  std::mt19937_64 rng(42);
  constexpr int kReads = 2000;
  uint64_t got = 0;
  auto t0 = Clock::now();
  for (int i = 0; i < kReads; ++i) {
    auto page = (*store)->ReadAll(1 + rng() % events, 100);
    if (!page.ok()) return Fail(page.status().ToString());
    got += page->size();
  }
  const double read_all_us = Seconds(Clock::now() - t0) * 1e6 / kReads;
  const uint64_t per_stream = events / streams;
  t0 = Clock::now();
  for (int i = 0; i < kReads; ++i) {
    auto page = (*store)->ReadStream(absl::StrCat("stream-", rng() % streams),
                                     1 + rng() % std::max<uint64_t>(per_stream, 1), 10);
    if (!page.ok()) return Fail(page.status().ToString());
    got += page->size();
  }
  const double read_stream_us = Seconds(Clock::now() - t0) * 1e6 / kReads;
  if (got == 0) return Fail("reads returned nothing");
  const double disk = static_cast<double>((*store)->SizeBytes());
  (void)(*store)->Close();
  store->reset();
  if (!keep) std::filesystem::remove_all(dir);

  std::printf(
      "events=%llu payload=%llu streams=%llu ids=%d fill_s=%.2f recovery_s=%.2f "
      "resident_bytes_per_event=%.1f disk_bytes_per_event=%.1f read_all_100_us=%.1f "
      "read_stream_10_us=%.1f\n",
      static_cast<unsigned long long>(events), static_cast<unsigned long long>(payload),
      static_cast<unsigned long long>(streams), ids ? 1 : 0, fill_s, recovery_s,
      (after - before) / static_cast<double>(events), disk / static_cast<double>(events),
      read_all_us, read_stream_us);
  return 0;
}
