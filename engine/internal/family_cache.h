// The per-thread lookup caches in front of a family's series index (engine/internal/family.h),
// which make WithLabelValues free of contended writes. Light: what engine/registry.h needs inline;
// the index itself (btree, mutex) stays behind the out-of-line functions declared here.
//
// clang-format off
//   Family<Counter>::WithLabelValues("a")
//       │  thread_local ThreadCaches ── by family index ──► FamilyCache<Counter>
//       │                                                   { label values → Counter }
//       │  hit: return the cached handle (a hash and a compare; no lock, no shared write)
//       ▼  miss: FamilyImpl::Lookup under the family mutex, then cache the handle in this thread
//   FamilyImpl { mutex; btree label values → SeriesPtr (sorted for exposition);
//                overflow series; cap }
// clang-format on
//
// Thread contract: a ThreadCaches and its FamilyCaches belong to one thread (thread_local); the
// families they point to are shared and thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/node_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/internal/series.h"
#include "engine/snapshot.h"

namespace metrics::internal {

using LabelValues = absl::Span<const std::string_view>;

// Value the overflow series has for every label.
inline constexpr std::string_view kOverflowLabelValue = "__overflow__";

// Heterogeneous hash/equality/order over label-value lists: stored as vector<string>, looked up as
// spans of string_view without building a key.
struct LabelsHash {
  using is_transparent = void;
  size_t operator()(LabelValues v) const {
    size_t h = v.size();
    for (std::string_view s : v) h = absl::HashOf(h, s);
    return h;
  }
  size_t operator()(const std::vector<std::string>& v) const {
    size_t h = v.size();
    for (std::string_view s : v) h = absl::HashOf(h, s);
    return h;
  }
};
struct LabelsEq {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::string_view(a[i]) != std::string_view(b[i])) return false;
    }
    return true;
  }
};
// Bumped (release) by every removal of a whole family; pairs with the acquire load in
// ThreadCaches::For.
inline std::atomic<uint64_t> removal_epoch{0};

class FamilyImpl;  // engine/internal/family.h

// The family operations the public headers need, out of line (engine/family.cc).
uint32_t FamilyIndex(const FamilyImpl& f);
// Bumped (release) by every Remove of a series of the family.
const std::atomic<uint64_t>& FamilySeriesEpoch(const FamilyImpl& f);
bool FamilyRemoved(const FamilyImpl& f);
SeriesPtr FamilyLookup(FamilyImpl& f, LabelValues values, absl::Status* why);
absl::StatusOr<SeriesPtr> FamilyBind(FamilyImpl& f, LabelValues values);
absl::Status FamilyRemove(FamilyImpl& f, LabelValues values);
const FamilyDesc& FamilyDescOf(const FamilyImpl& f);
uint64_t FamilyDiverted(const FamilyImpl& f);
size_t FamilySize(const FamilyImpl& f);

// Gives the caches access to a handle's series without widening the handles' public API.
struct HandleAccess {
  template <typename Handle>
  static const SeriesPtr& Series(const Handle& h) {
    return h.series_;
  }
};

class FamilyCacheBase {
 public:
  virtual ~FamilyCacheBase() = default;
  // False when the family itself is gone: drop the whole cache.
  virtual bool Purge() = 0;
};

template <typename Handle>
class FamilyCache final : public FamilyCacheBase {
 public:
  explicit FamilyCache(std::shared_ptr<FamilyImpl> family)
      : family_(std::move(family)), series_epoch_(&FamilySeriesEpoch(*family_)) {}

  Handle* Find(LabelValues values) {
    // Acquire pairs with the release increment in FamilyImpl::Remove.
    if (ABSL_PREDICT_FALSE(series_epoch_->load(std::memory_order_acquire) != epoch_seen_)) {
      PurgeRemovedSeries();
    }
    // Monomorphic memo: a thread often asks for the same label set many times in a row, and
    // comparing against the last key is cheaper than hashing.
    if (last_ != nullptr && LabelsEq()(*last_key_, values)) return last_;
    auto it = entries_.find(values);
    if (it == entries_.end()) return nullptr;
    last_key_ = &it->first;
    last_ = &it->second;
    return last_;
  }

  Handle& Miss(LabelValues values) {
    absl::Status why;
    SeriesPtr s = FamilyLookup(*family_, values, &why);
    if (s == nullptr) {  // removed family: writes go to the sink
      diverted_ = Handle();
      return diverted_;
    }
    if (!why.ok()) {
      // Diverted label sets are not cached, so that random label values cannot grow every thread's
      // cache.
      diverted_ = Handle(std::move(s));
      return diverted_;
    }
    auto [it, inserted] =
        entries_.try_emplace(std::vector<std::string>(values.begin(), values.end()), std::move(s));
    return it->second;
  }

  bool Purge() override { return !FamilyRemoved(*family_); }

  void PurgeRemovedSeries() {
    // Before the scan: a later Remove is seen next time (acquire: as in Find).
    epoch_seen_ = series_epoch_->load(std::memory_order_acquire);
    last_ = nullptr;
    absl::erase_if(entries_, [](const auto& kv) {
      // Acquire pairs with the release store in FamilyImpl::Remove; only a hint here, the epoch
      // orders the rest.
      return HandleAccess::Series(kv.second)->removed.load(std::memory_order_acquire);
    });
  }

 private:
  std::shared_ptr<FamilyImpl> family_;
  const std::atomic<uint64_t>* series_epoch_;  // the family's, read on every lookup
  uint64_t epoch_seen_ = 0;                    // *series_epoch_ at the last purge
  // Node-based: a handle's address survives rehashing, so the reference WithLabelValues returns
  // stays valid until its series (or family) is removed and this thread next looks up, or the
  // thread exits.
  absl::node_hash_map<std::vector<std::string>, Handle, LabelsHash, LabelsEq> entries_;
  const std::vector<std::string>* last_key_ = nullptr;
  Handle* last_ = nullptr;  // entry of the last hit; reset whenever entries are erased
  Handle diverted_;
};

// The calling thread's caches, indexed by FamilyImpl::index(). Freed (releasing their handles) at
// thread exit.
class ThreadCaches {
 public:
  static ThreadCaches& Get() {
    ThreadCaches* c = tls_;
    if (ABSL_PREDICT_FALSE(c == nullptr)) c = Create();
    return *c;
  }

  // `index`: FamilyIndex(*family), which the caller keeps.
  template <typename Handle>
  FamilyCache<Handle>& For(const std::shared_ptr<FamilyImpl>& family, uint32_t index) {
    // Acquire pairs with the release increment of removal_epoch in FamilyImpl::Remove / RemoveAll.
    uint64_t epoch = removal_epoch.load(std::memory_order_acquire);
    if (ABSL_PREDICT_FALSE(epoch != epoch_seen_)) Sync(epoch);
    const uint32_t i = index;
    if (ABSL_PREDICT_FALSE(i >= by_family_.size() || by_family_[i] == nullptr)) {
      Add<Handle>(family, i);
    }
    return static_cast<FamilyCache<Handle>&>(*by_family_[i]);
  }

 private:
  // Slow path: allocates this thread's caches and arranges for their destruction at thread exit (a
  // pthread key destructor, so that lookups made by other thread_local destructors are released
  // too).
  static ThreadCaches* Create();
  static void Destroy(void* caches);

  template <typename Handle>
  void Add(const std::shared_ptr<FamilyImpl>& family, uint32_t i) {
    if (i >= by_family_.size()) by_family_.resize(i + 1);
    by_family_[i] = std::make_unique<FamilyCache<Handle>>(family);
  }

  void Sync(uint64_t epoch) {
    for (auto& c : by_family_) {
      if (c != nullptr && !c->Purge()) c.reset();
    }
    epoch_seen_ = epoch;
  }

  static constinit thread_local ThreadCaches* tls_ __attribute__((tls_model("initial-exec")));
  std::vector<std::unique_ptr<FamilyCacheBase>> by_family_;
  uint64_t epoch_seen_ = 0;
};

}  // namespace metrics::internal
