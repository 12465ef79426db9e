// Per-thread cell shards: the storage under every counter and histogram. Unsafe primitives;
// instrumented code uses the handles of engine/metric.h instead.
//
// clang-format off
// Model
// -----
//   slot space (process-wide)   [0 .. kMaxCells)   allocated in blocks to series by the CellAllocator
//
//   shard 0 (thread A)   | c0 | c1 | c2 | ... |    one reserved, lazily committed mapping per shard;
//   shard 1 (thread B)   | c0 | c1 | c2 | ... |    cell i of every shard belongs to the series
//   shard 2 (parked)     | c0 | c1 | c2 | ... |    owning slot i
//
//   value(series) = sum over every shard ever created (live or parked) of its cells in the
//                   series' block
//
// Contract
// --------
// * Single writer per shard: only the thread that currently leases a shard writes its cells, with
//   a relaxed load and a relaxed store (no read-modify-write). Readers (Collect) only load,
//   relaxed, and never write, so a cell only ever grows for a counter: a scrape can't see a value
//   lower than an earlier scrape saw.
// * A thread leases a shard on its first write and parks it when it exits (a pthread key
//   destructor). The next new thread adopts a parked shard with its values. Shards are never
//   freed, so a scrape that sums every shard sees each count exactly once, whichever thread owns
//   the shard now. Memory grows with the peak number of live threads, not with the number of
//   threads ever started.
// * Each shard is one mmap of kMaxCells * 8 bytes reserved with MAP_NORESERVE; the kernel commits
//   a page when the owner first writes to it, so a thread that touches few series costs a few
//   pages. Untouched pages read as zero.
// * No abort when a shard cannot be had: if the mmap fails (address space exhausted, RLIMIT_AS,
//   vm.max_map_count) the thread writes, for the rest of its life, to a sink: one more shard-sized
//   region, reserved at static initialisation, shared by all such threads and never scraped.
//   Their writes are lost, and counted: ShardAllocationFailures(), reported by every
//   Registry::Collect() as metrics_shard_allocation_failures_total once non-zero. (Only if even
//   the sink could not be reserved, at start-up and again at the failure, does the process abort.)
// * A block of cells is zeroed (in every shard) when its series is freed, and only then handed to
//   another series. A series is freed only when no handle refers to it any more
//   (engine/internal/series.h), so no thread can still be writing to the block.
// clang-format on
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/base/optimization.h"

namespace metrics::internal {

// Cells per shard: 2^26 cells = 512 MiB of address space per shard, committed only where written (a
// default histogram series spans ~2,300 cells, so this holds ~29,000 of them, or 33 million
// counters).
inline constexpr uint32_t kMaxCells = 1u << 26;
// Cells [0, kSinkCells) are a sink: default-constructed handles write there and no series reports
// them.
inline constexpr uint32_t kSinkCells = 4096;

// This thread's shard, null until the first write. constinit: no TLS init wrapper on the hot path.
extern constinit thread_local uint64_t* tls_cells __attribute__((tls_model("initial-exec")));

// Slow path: lease a shard (adopting a parked one if any) for the calling thread.
uint64_t* AcquireThreadCells();

// The calling thread's shard base; leases one on first use.
inline uint64_t* ThreadCells() {
  uint64_t* cells = tls_cells;
  if (ABSL_PREDICT_FALSE(cells == nullptr)) cells = AcquireThreadCells();
  return cells;
}

// Owner-only update of one cell. The calling thread is the only writer of its shard (class comment
// above), so a relaxed load and a relaxed store lose nothing; relaxed because readers need only
// per-cell coherence.
inline void CellAdd(uint64_t* cells, uint32_t index, uint64_t n) {
  std::atomic_ref<uint64_t> cell(cells[index]);
  cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline double BitsToDouble(uint64_t bits) { return __builtin_bit_cast(double, bits); }
inline uint64_t DoubleToBits(double v) { return __builtin_bit_cast(uint64_t, v); }

// Owner-only add of a double kept as its bit pattern in a cell; same single-writer argument as
// CellAdd.
inline void CellAddDouble(uint64_t* cells, uint32_t index, double v) {
  std::atomic_ref<uint64_t> cell(cells[index]);
  cell.store(DoubleToBits(BitsToDouble(cell.load(std::memory_order_relaxed)) + v),
             std::memory_order_relaxed);
}

// Reader side: relaxed load of one cell of any shard (per-cell coherence is all a sum needs).
inline uint64_t CellLoad(const uint64_t* cells, uint32_t index) {
  return std::atomic_ref<uint64_t>(const_cast<uint64_t&>(cells[index]))
      .load(std::memory_order_relaxed);
}

// Threads that could not get a shard and write to the sink (see the contract above).
uint64_t ShardAllocationFailures();

// Tests only: while set, a thread's first write finds no shard, as if the mmap had failed (and no
// parked shard were there to adopt).
void SetShardMapFailureForTesting(bool fail);

// Every shard created so far, live or parked, in creation order. Shards are never freed.
std::vector<const uint64_t*> AllShards();

// Number of shards created so far (peak concurrent writer threads).
size_t ShardCount();

// Block allocation in the process-wide slot space. Thread-safe (a mutex; registration path only).
class CellAllocator {
 public:
  // Returns the first cell of a zeroed block of n cells, or kNoCells when the slot space is
  // exhausted.
  static uint32_t Allocate(uint32_t n);
  // Zeroes the block in every shard and makes it available again. The caller guarantees no thread
  // writes it. Runs in destructors: never throws (out of memory, the block is just not reused).
  static void Free(uint32_t first, uint32_t n) noexcept;
  // Cells handed out and not freed (for memory accounting and tests).
  static uint64_t CellsInUse();

  static constexpr uint32_t kNoCells = ~0u;
};

}  // namespace metrics::internal
