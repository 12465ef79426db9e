// A family's series index (shared, mutex-guarded, slow path) and the per-thread lookup caches in
// front of it that make WithLabelValues free of contended writes.
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
// Removing a series bumps its family's epoch (release); a thread looking up in that family and
// seeing a new epoch (acquire) first drops its cached handles of the family's removed series.
// Removing a family (Registry::Remove, or the registry's destruction) bumps a process-wide epoch:
// a thread seeing it drops its caches of removed families on its next lookup in any family. So a
// removed series is freed once every handle and every thread cache that held it has let go
// (threads that never look up again let go at exit), and one Remove costs a purge only of the
// caches of its own family.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
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
struct LabelsLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    size_t n = std::min(a.size(), b.size());
    for (size_t i = 0; i < n; ++i) {
      int c = std::string_view(a[i]).compare(std::string_view(b[i]));
      if (c != 0) return c < 0;
    }
    return a.size() < b.size();
  }
};

// Bumped (release) by every removal of a whole family; pairs with the acquire load in
// ThreadCaches::For.
inline std::atomic<uint64_t> removal_epoch{0};

class FamilyImpl {
 public:
  FamilyImpl(std::shared_ptr<const FamilyDesc> desc, uint32_t cells_per_series, size_t max_series);
  ~FamilyImpl();

  const FamilyDesc& desc() const { return *desc_; }
  const std::shared_ptr<const FamilyDesc>& desc_ptr() const { return desc_; }
  uint32_t index() const { return index_; }
  uint32_t cells_per_series() const { return cells_per_series_; }
  size_t max_series() const { return max_series_; }

  // Finds or creates the series. On an invalid label set, a full family or exhausted cells returns
  // the overflow series (made on the first diversion) and counts the diversion, with the reason in
  // *why (if given). A removed family returns nullptr, and so does a diversion when the cells
  // cannot hold the overflow series (*why says so; the caller writes to the sink).
  SeriesPtr Lookup(LabelValues values, absl::Status* why);
  // Like Lookup, but returns the error instead of diverting.
  absl::StatusOr<SeriesPtr> Bind(LabelValues values);
  absl::Status Remove(LabelValues values);
  // Drops every series and refuses new ones: the family has left its registry.
  void RemoveAll();
  bool removed() const { return removed_.load(std::memory_order_acquire); }
  // Bumped by every Remove of a series of this family (acquire pairs with its release).
  uint64_t series_epoch() const { return series_epoch_.load(std::memory_order_acquire); }
  // False when the cell space could not hold the one series of a family without labels: the
  // family is unusable. (A labelled family allocates nothing until a label set is used.)
  bool ok() const;

  // Label sets diverted to the overflow series so far.
  uint64_t diverted() const;
  size_t size() const;

  // The current series, sorted by label values; rebuilt only when the set changed since the last
  // call.
  std::shared_ptr<const std::vector<SeriesPtr>> SortedSeries();

 private:
  SeriesPtr Create(LabelValues values);  // requires mu_; nullptr when cells are exhausted
  absl::Status Check(LabelValues values) const;
  SeriesPtr DivertLocked();  // requires mu_

  const std::shared_ptr<const FamilyDesc> desc_;
  const uint32_t cells_per_series_;
  const size_t max_series_;
  const uint32_t index_;
  std::atomic<bool> removed_{false};
  std::atomic<uint64_t> series_epoch_{0};

  mutable std::mutex mu_;
  absl::btree_map<std::vector<std::string>, SeriesPtr, LabelsLess> series_;
  std::shared_ptr<const std::vector<SeriesPtr>> sorted_;
  bool dirty_ = true;
  // Label-less family: its one series, from registration on. Labelled: null until the first
  // diversion, then the overflow series (listed in series_ while overflow_listed_).
  SeriesPtr overflow_;
  bool overflow_listed_ = false;
  uint64_t diverted_ = 0;
};

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
  explicit FamilyCache(std::shared_ptr<FamilyImpl> family) : family_(std::move(family)) {}

  Handle* Find(LabelValues values) {
    if (ABSL_PREDICT_FALSE(family_->series_epoch() != epoch_seen_)) PurgeRemovedSeries();
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
    SeriesPtr s = family_->Lookup(values, &why);
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

  bool Purge() override { return !family_->removed(); }

  void PurgeRemovedSeries() {
    epoch_seen_ = family_->series_epoch();  // before the scan: a later Remove is seen next time
    last_ = nullptr;
    absl::erase_if(entries_, [](const auto& kv) {
      // Acquire pairs with the release store in FamilyImpl::Remove; only a hint here, the epoch
      // orders the rest.
      return HandleAccess::Series(kv.second)->removed.load(std::memory_order_acquire);
    });
  }

 private:
  std::shared_ptr<FamilyImpl> family_;
  uint64_t epoch_seen_ = 0;  // family_->series_epoch() at the last purge
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

  template <typename Handle>
  FamilyCache<Handle>& For(const std::shared_ptr<FamilyImpl>& family) {
    // Acquire pairs with the release increment of removal_epoch in FamilyImpl::Remove / RemoveAll.
    uint64_t epoch = removal_epoch.load(std::memory_order_acquire);
    if (ABSL_PREDICT_FALSE(epoch != epoch_seen_)) Sync(epoch);
    uint32_t i = family->index();
    if (ABSL_PREDICT_FALSE(i >= by_family_.size() || by_family_[i] == nullptr)) Add<Handle>(family);
    return static_cast<FamilyCache<Handle>&>(*by_family_[i]);
  }

 private:
  // Slow path: allocates this thread's caches and arranges for their destruction at thread exit (a
  // pthread key destructor, so that lookups made by other thread_local destructors are released
  // too).
  static ThreadCaches* Create();
  static void Destroy(void* caches);

  template <typename Handle>
  void Add(const std::shared_ptr<FamilyImpl>& family) {
    uint32_t i = family->index();
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
