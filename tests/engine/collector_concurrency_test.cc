// Scrape-time families under concurrent scrapes, registrations and removals (run under TSan in CI):
// once Remove / RemoveCollector returns, the callback's state may be destroyed.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

class Counting : public Collector {
 public:
  explicit Counting(std::atomic<bool>* alive) : alive_(alive) {}
  std::vector<FamilyDesc> Describe() const override {
    return {{.name = "col_value", .help = "h", .type = MetricType::kGauge}};
  }
  void Collect(std::vector<FamilySnapshot>& out) const override {
    EXPECT_TRUE(alive_->load()) << "collector called after RemoveCollector returned";
    AppendSample(
        AppendFamily(out, std::make_shared<const FamilyDesc>(FamilyDesc{.name = "col_value"})), {},
        1);
  }

 private:
  std::atomic<bool>* alive_;
};

TEST(CollectorConcurrencyTest, RemovalWaitsForRunningCallbacks) {
  Registry r;
  auto c = r.AddCounter({.name = "writes_total", .help = "h"});
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> scrapes{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        Snapshot s = r.Collect();
        for (size_t k = 1; k < s.families.size(); ++k) {
          EXPECT_LT(s.families[k - 1].desc->name, s.families[k].desc->name);
        }
        scrapes.fetch_add(1);
      }
    });
  }
  threads.emplace_back([&] {
    Counter w = *c->Bind({});
    while (!stop.load()) w.Inc();
  });
  for (int round = 0; round < 300; ++round) {
    auto state = std::make_unique<std::atomic<double>>(round);
    ASSERT_TRUE(r.AddGaugeFunc({.name = "func_value", .help = "h"}, [p = state.get()] {
                   return p->load();
                 }).ok());
    std::atomic<bool> alive{true};
    auto col = std::make_shared<Counting>(&alive);
    ASSERT_TRUE(r.AddCollector(col).ok());
    std::this_thread::yield();
    ASSERT_TRUE(r.Remove("func_value").ok());
    state.reset();  // a callback still running would read freed memory (ASan) or race (TSan)
    ASSERT_TRUE(r.RemoveCollector(col.get()).ok());
    alive.store(false);
  }
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_GT(scrapes.load(), 0u);
}

}  // namespace
}  // namespace metrics
