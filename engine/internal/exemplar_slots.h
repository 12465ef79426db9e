// Where a series keeps its latest exemplars: one slot per counter, one per classic bucket of a
// histogram. Made on a series' first exemplar (SeriesCore::exemplars), so a series that never
// records one pays a null pointer, and plain Inc/Observe never touch it.
//
// Thread contract: any number of writers (Record) and one reader at a time (Read, under
// Registry::Collect's lock; concurrent readers are also safe, they just wait on each other).
// Each slot has a one-byte lock held only to swap or copy a shared_ptr, never across an allocation
// or a callback. A writer that finds its slot locked drops its exemplar instead of waiting: the
// holder is another writer storing an exemplar for the same slot at the same instant (whose
// exemplar is as recent, and last-writer-wins would have kept only one of the two), or a scrape
// copying the pointer (a few nanoseconds). The reader spins: its critical sections are as short.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/snapshot.h"

namespace metrics::internal {

class ExemplarSlots {
 public:
  explicit ExemplarSlots(uint32_t n) : n_(n), slots_(new Slot[n]) {}

  uint32_t size() const { return n_; }

  // Makes `x` the slot's exemplar unless another thread holds the slot right now (see above).
  // Returns whether it was stored. The exemplar it replaces is freed after the lock is released.
  bool Record(uint32_t slot, std::shared_ptr<const Exemplar> x) {
    Slot& s = slots_[slot];
    // Acquire: pairs with the release in Unlock, so the previous holder's swap is visible.
    if (s.locked.exchange(true, std::memory_order_acquire)) return false;
    s.exemplar.swap(x);
    s.Unlock();
    return true;  // x, now the old exemplar, is released here, outside the lock
  }

  // Appends the set slots, in slot order, as exemplars of snapshot sample `sample`.
  void Read(uint32_t sample, std::vector<ExemplarSample>* out) const {
    for (uint32_t i = 0; i < n_; ++i) {
      Slot& s = slots_[i];
      // Acquire: pairs with Unlock's release (a writer's swap happens-before this copy).
      while (s.locked.exchange(true, std::memory_order_acquire)) {
        while (s.locked.load(std::memory_order_relaxed)) {  // relaxed: only a hint to retry
        }
      }
      std::shared_ptr<const Exemplar> x = s.exemplar;
      s.Unlock();
      if (x != nullptr) out->push_back({sample, i, std::move(x)});
    }
  }

 private:
  struct Slot {
    std::atomic<bool> locked{false};
    std::shared_ptr<const Exemplar> exemplar;
    // Release: pairs with the acquire exchange of the next holder (Record or Read).
    void Unlock() { locked.store(false, std::memory_order_release); }
  };

  const uint32_t n_;
  const std::unique_ptr<Slot[]> slots_;
};

}  // namespace metrics::internal
