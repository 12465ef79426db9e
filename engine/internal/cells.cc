#include "engine/internal/cells.h"

#include <pthread.h>
#include <sys/mman.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "absl/container/flat_hash_map.h"

namespace metrics::internal {

constinit thread_local uint64_t* tls_cells = nullptr;

namespace {

// Shards and their leases. Guarded by mu; the hot path never takes it.
struct ShardPool {
  std::mutex mu;
  std::vector<uint64_t*> all;     // every shard ever mapped; never shrinks
  std::vector<uint64_t*> parked;  // shards of exited threads, waiting for a new owner
  pthread_key_t key;

  ShardPool() {
    // The key's destructor runs at thread exit after the C++ thread_local destructors, and again if
    // one of those wrote a metric (re-leasing a shard), so writes made during thread teardown are
    // not lost either.
    if (pthread_key_create(&key, &ShardPool::OnThreadExit) != 0) {
      std::fprintf(stderr, "metrics: pthread_key_create failed\n");
      std::abort();
    }
  }

  static void OnThreadExit(void* shard) {
    ShardPool& pool = Get();
    std::lock_guard<std::mutex> lock(pool.mu);
    // Parking under the mutex orders this thread's last cell writes before the adopter's first ones
    // (the adopter takes the same mutex in Lease).
    pool.parked.push_back(static_cast<uint64_t*>(shard));
    tls_cells = nullptr;
  }

  uint64_t* Lease() {
    uint64_t* shard = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!parked.empty()) {
        shard = parked.back();
        parked.pop_back();
      }
    }
    if (shard == nullptr) {
      void* p = mmap(nullptr, size_t{kMaxCells} * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (p == MAP_FAILED) {
        std::fprintf(stderr,
                     "metrics: cannot reserve %zu bytes of address space for a thread shard\n",
                     size_t{kMaxCells} * sizeof(uint64_t));
        std::abort();
      }
      shard = static_cast<uint64_t*>(p);
      std::lock_guard<std::mutex> lock(mu);
      all.push_back(shard);
    }
    pthread_setspecific(key, shard);
    return shard;
  }

  static ShardPool& Get() {
    static ShardPool* pool =
        new ShardPool();  // never destroyed: threads may exit after main returns
    return *pool;
  }
};

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

void CellAllocator::Free(uint32_t first, uint32_t n) {
  std::vector<const uint64_t*> shards = AllShards();
  for (const uint64_t* shard : shards) {
    uint64_t* cells = const_cast<uint64_t*>(shard);
    for (uint32_t i = first; i < first + n; ++i) {
      // Read before writing, so a page that no thread ever wrote is not committed by the zeroing.
      if (CellLoad(cells, i) != 0) {
        // No handle refers to the block any more, so no owner writes it; relaxed is enough because
        // the block reaches its next series through the allocator mutex, which orders this store
        // before that series' first write and first read.
        std::atomic_ref<uint64_t>(cells[i]).store(0, std::memory_order_relaxed);
      }
    }
  }
  Allocator& a = Allocator::Get();
  std::lock_guard<std::mutex> lock(a.mu);
  a.free_by_size[n].push_back(first);
  a.in_use -= n;
}

uint64_t CellAllocator::CellsInUse() {
  Allocator& a = Allocator::Get();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.in_use;
}

}  // namespace metrics::internal
