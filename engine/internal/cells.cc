#include "engine/internal/cells.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <new>

#include "absl/container/flat_hash_map.h"

namespace metrics::internal {

constinit thread_local uint64_t* tls_cells = nullptr;

namespace {

constexpr size_t kShardBytes = size_t{kMaxCells} * sizeof(uint64_t);

// Test hook (SetShardMapFailureForTesting): when set, leasing fails as a failed mmap would.
std::atomic<bool> fail_maps_for_testing{false};

uint64_t* MapShard() {
  void* p = mmap(nullptr, kShardBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint64_t*>(p);
}

// Shards and their leases. Guarded by mu; the hot path never takes it.
struct ShardPool {
  std::mutex mu;
  std::vector<uint64_t*> all;     // every shard ever mapped; never shrinks
  std::vector<uint64_t*> parked;  // shards of exited threads; capacity >= all.size() (see Lease)
  pthread_key_t key;
  bool key_ok = false;
  // Where the writes of a thread that could not get a shard go: one shard-sized region reserved
  // when the pool is made (at static initialisation, while address space is plentiful), shared by
  // every such thread and never scraped. Null only if even that reservation failed.
  uint64_t* sink = nullptr;
  std::atomic<uint64_t> failures{0};

  ShardPool() {
    // The key's destructor runs at thread exit after the C++ thread_local destructors, and again if
    // one of those wrote a metric (re-leasing a shard), so writes made during thread teardown are
    // not lost either. Without a key, shards are not parked at exit: still scraped, never reused.
    key_ok = pthread_key_create(&key, &ShardPool::OnThreadExit) == 0;
    sink = MapShard();
  }

  static void OnThreadExit(void* shard) {
    ShardPool& pool = Get();
    std::lock_guard<std::mutex> lock(pool.mu);
    // Parking under the mutex orders this thread's last cell writes before the adopter's first ones
    // (the adopter takes the same mutex in Lease). Never allocates: `parked` has room for every
    // shard (reserved in Lease), and this shard is not parked yet.
    pool.parked.push_back(static_cast<uint64_t*>(shard));
    tls_cells = nullptr;
  }

  // Never fails and never throws: a thread that gets no shard of its own gets the sink.
  uint64_t* Lease() {
    std::lock_guard<std::mutex> lock(mu);
    // Relaxed: a test switch, set before the threads it affects start (thread creation orders it).
    if (fail_maps_for_testing.load(std::memory_order_relaxed)) return SinkLocked();
    uint64_t* shard = nullptr;
    if (!parked.empty()) {
      shard = parked.back();
      parked.pop_back();
    } else {
      try {
        // Room first, so that recording the shard (and parking it at exit) cannot fail later.
        all.reserve(all.size() + 1);
        parked.reserve(all.size() + 1);
        shard = MapShard();
      } catch (const std::bad_alloc&) {
        shard = nullptr;  // (a shard mapped before the throw does not exist: MapShard is last)
      }
      if (shard == nullptr) return SinkLocked();
      all.push_back(shard);  // within the reserved capacity: no allocation
    }
    if (key_ok) pthread_setspecific(key, shard);  // on failure the shard is just never parked
    return shard;
  }

  // Requires mu. The sink is never parked (no pthread key value): its threads keep it for life.
  uint64_t* SinkLocked() {
    // Relaxed: a statistic read on its own by Collect; pairs with nothing.
    failures.fetch_add(1, std::memory_order_relaxed);
    if (sink == nullptr) sink = MapShard();
    if (sink == nullptr) {
      // Not even the sink could be reserved at start-up or now: there is nowhere a write could go.
      std::fprintf(stderr,
                   "metrics: cannot reserve %zu bytes of address space for a thread shard or "
                   "the sink\n",
                   kShardBytes);
      std::abort();
    }
    return sink;
  }

  static ShardPool& Get() {
    static ShardPool* pool =
        new ShardPool();  // never destroyed: threads may exit after main returns
    return *pool;
  }
};

// Makes the pool, and so reserves the sink, at static initialisation rather than at the first
// write, which may come when address space is already short.
[[maybe_unused]] const bool pool_made_early = (ShardPool::Get(), true);

struct Allocator {
  std::mutex mu;
  uint32_t next = kSinkCells;
  uint64_t in_use = 0;
  absl::flat_hash_map<uint32_t, std::vector<uint32_t>> free_by_size;

  static Allocator& Get() {
    static Allocator* a = new Allocator();
    return *a;
  }
};

}  // namespace

uint64_t* AcquireThreadCells() {
  uint64_t* shard = ShardPool::Get().Lease();
  tls_cells = shard;
  return shard;
}

uint64_t ShardAllocationFailures() {
  // Relaxed: a statistic; pairs with nothing (the fetch_add in ShardPool::SinkLocked).
  return ShardPool::Get().failures.load(std::memory_order_relaxed);
}

void SetShardMapFailureForTesting(bool fail) {
  // Relaxed: see MapShard.
  fail_maps_for_testing.store(fail, std::memory_order_relaxed);
}

std::vector<const uint64_t*> AllShards() {
  ShardPool& pool = ShardPool::Get();
  std::lock_guard<std::mutex> lock(pool.mu);
  return std::vector<const uint64_t*>(pool.all.begin(), pool.all.end());
}

size_t ShardCount() {
  ShardPool& pool = ShardPool::Get();
  std::lock_guard<std::mutex> lock(pool.mu);
  return pool.all.size();
}

uint32_t CellAllocator::Allocate(uint32_t n) {
  Allocator& a = Allocator::Get();
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.free_by_size.find(n);
  if (it != a.free_by_size.end() && !it->second.empty()) {
    uint32_t first = it->second.back();
    it->second.pop_back();
    a.in_use += n;
    return first;
  }
  if (n == 0 || n > kMaxCells - a.next) return kNoCells;
  uint32_t first = a.next;
  a.next += n;
  a.in_use += n;
  return first;
}

void CellAllocator::Free(uint32_t first, uint32_t n) noexcept {
  {
    // Walks the shards under the pool mutex instead of copying the list: Free runs in a
    // destructor (SeriesCore's) and must not allocate. The sink is not in `all`: never zeroed,
    // never read.
    ShardPool& pool = ShardPool::Get();
    std::lock_guard<std::mutex> lock(pool.mu);
    for (uint64_t* cells : pool.all) {
      for (uint32_t i = first; i < first + n; ++i) {
        // Read before writing, so a page that no thread ever wrote is not committed by the zeroing.
        if (CellLoad(cells, i) != 0) {
          // No handle refers to the block any more, so no owner writes it; relaxed is enough
          // because the block reaches its next series through the allocator mutex, which orders
          // this store before that series' first write and first read.
          std::atomic_ref<uint64_t>(cells[i]).store(0, std::memory_order_relaxed);
        }
      }
    }
  }
  Allocator& a = Allocator::Get();
  std::lock_guard<std::mutex> lock(a.mu);
  a.in_use -= n;
  try {
    a.free_by_size[n].push_back(first);
  } catch (const std::bad_alloc&) {
    // Out of memory: the (zeroed) block is not reused; better than throwing from a destructor.
  }
}

uint64_t CellAllocator::CellsInUse() {
  Allocator& a = Allocator::Get();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.in_use;
}

}  // namespace metrics::internal
