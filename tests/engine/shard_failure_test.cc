// A thread that cannot get a shard writes to the sink, is counted, and nothing aborts
// (engine/internal/cells.h). Once with the test hook (any build, also under sanitizers), once for
// real: a forked child under an RLIMIT_AS too small for a shard's mmap.
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <thread>
#include <vector>

#include "engine/internal/cells.h"
#include "engine/registry.h"
#include "exposition/metrics_handler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

// The counter family's only series' value, or -1 when absent.
double Value(const Snapshot& s, std::string_view name) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == name && !f.samples.empty()) {
      return f.desc->type == MetricType::kHistogram ? double(f.histograms.at(0).count)
                                                    : f.samples[0].Total();
    }
  }
  return -1;
}

TEST(ShardFailureTest, ThreadWithoutAShardWritesToTheSinkAndIsCounted) {
  Registry r;
  auto family = r.AddCounter({.name = "c_total", .help = "h", .label_names = {"k"}});
  Counter c = *family->Bind({"a"});
  Histogram h = *r.AddHistogram({.name = "h_seconds", .help = "h"})->Bind({});
  const uint64_t before = internal::ShardAllocationFailures();
  EXPECT_EQ(Value(r.Collect(), kShardAllocationFailuresFamily), before > 0 ? double(before) : -1);

  internal::SetShardMapFailureForTesting(true);
  std::vector<std::thread> sinks;
  for (int t = 0; t < 4; ++t) {
    sinks.emplace_back([&] {  // several threads share the sink at once (TSan: no race)
      for (int i = 0; i < 10000; ++i) {
        c.Inc();
        h.Observe(0.001 * i);
        family->WithLabelValues("b").Inc();
      }
    });
  }
  for (auto& t : sinks) t.join();
  internal::SetShardMapFailureForTesting(false);

  EXPECT_EQ(internal::ShardAllocationFailures(), before + 4);
  std::thread([&] { c.Inc(3); }).join();  // a later thread gets a shard again
  Snapshot s = r.Collect();
  EXPECT_EQ(Value(s, kShardAllocationFailuresFamily), double(before + 4));
  EXPECT_EQ(Value(s, "c_total"), 3);  // the sink threads' writes are lost, not misattributed
  EXPECT_EQ(Value(s, "h_seconds"), 0);
  for (size_t i = 1; i < s.families.size(); ++i) {
    EXPECT_LT(s.families[i - 1].desc->name, s.families[i].desc->name);
  }
}

// The /metrics handler reports it always (0 included), once whatever the number of registries.
TEST(ShardFailureTest, ShardAllocationFailuresAlwaysOnceAcrossRegistries) {
  auto count = [](const Snapshot& s) {
    double value = -1;
    int n = 0;
    for (const auto& f : s.families) {
      if (f.desc->name == kShardAllocationFailuresFamily) ++n, value = f.samples.at(0).Total();
    }
    return std::pair(n, value);
  };
  Registry a, b;
  const double before = static_cast<double>(internal::ShardAllocationFailures());
  EXPECT_EQ(count(exposition::MetricsHandler({&a, &b}).Collect()),
            std::pair(1, before));  // also when 0
  // A thread that gets no shard: now every registry reports it, the handler still once.
  Counter c = *a.AddCounter({.name = "c_total", .help = "h"})->Bind({});
  internal::SetShardMapFailureForTesting(true);
  std::thread([&] { c.Inc(); }).join();
  internal::SetShardMapFailureForTesting(false);
  EXPECT_EQ(count(a.Collect()), std::pair(1, before + 1));
  EXPECT_EQ(count(b.Collect()), std::pair(1, before + 1));
  EXPECT_EQ(count(exposition::MetricsHandler({&a, &b}).Collect()), std::pair(1, before + 1));
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitizer = true;  // their shadow memory needs terabytes of address space
#else
constexpr bool kSanitizer = false;
#endif

// Exit codes of the child, for the parent's message.
enum ChildExit { kOk = 0, kMapStillWorks = 3, kNotCounted = 4, kWritesLeaked = 5, kNoLimit = 6 };

TEST(ShardFailureTest, NoAbortWhenTheShardMmapFailsUnderRlimitAs) {
  if (kSanitizer) GTEST_SKIP() << "RLIMIT_AS cannot be lowered under ASan/TSan";
  Registry r;
  Counter c = *r.AddCounter({.name = "c_total", .help = "h"})->Bind({});
  c.Inc();  // this thread's shard exists before the fork
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Room for a thread (stack, malloc arena) but not for a shard's 512 MiB reservation.
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
      std::fclose(f);
    }
    if (pages <= 0) _exit(kNoLimit);
    const rlim_t limit = rlim_t(pages) * sysconf(_SC_PAGESIZE) + (256u << 20);
    const rlimit lim{limit, limit};
    if (setrlimit(RLIMIT_AS, &lim) != 0) _exit(kNoLimit);
    void* p = mmap(nullptr, size_t{internal::kMaxCells} * 8, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p != MAP_FAILED) _exit(kMapStillWorks);
    const uint64_t before = internal::ShardAllocationFailures();
    std::thread([&] { c.Inc(41); }).join();  // before the fix: abort() here
    Snapshot s = r.Collect();
    if (Value(s, kShardAllocationFailuresFamily) < double(before + 1)) _exit(kNotCounted);
    if (Value(s, "c_total") != 1) _exit(kWritesLeaked);
    _exit(kOk);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(WIFSIGNALED(status)) << "the child died of signal " << WTERMSIG(status)
                                    << (WTERMSIG(status) == SIGABRT ? " (abort)" : "");
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kOk)
      << "3: the shard mmap did not fail under the limit; 4: failure not counted in Collect; "
         "5: the sink thread's write reached the series; 6: could not set the limit";
}

}  // namespace
}  // namespace metrics
