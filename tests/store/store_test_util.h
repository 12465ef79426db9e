// Helpers shared by the store tests: scratch directories, file bytes, metric values.
#pragma once

#include <stdlib.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "engine/registry.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"

namespace metrics::store::testing_util {

// A fresh directory under the test temp dir, removed with everything in it at scope exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = ::testing::TempDir() + "store_test_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string File(std::string_view name) const { return path_ + "/" + std::string(name); }

  // The segment files, sorted.
  std::vector<std::string> Segments() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("segment-", 0) == 0) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteBytes(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline const FamilySnapshot* FindFamily(const Snapshot& s, std::string_view name) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == name) return &f;
  }
  return nullptr;
}

// The value of a counter or gauge series, or NaN when absent.
inline double Value(const Registry& r, std::string_view name,
                    std::vector<std::string> labels = {}) {
  const Snapshot s = r.Collect();
  const FamilySnapshot* f = FindFamily(s, name);
  if (f == nullptr) return std::nan("");
  for (const SeriesSample& x : f->samples) {
    if (*x.label_values == labels) {
      return f->desc->type == MetricType::kCounter ? x.Total() : x.value;
    }
  }
  return std::nan("");
}

// The observation count of an unlabelled histogram, or -1 when absent.
inline int64_t HistogramCount(const Registry& r, std::string_view name) {
  const Snapshot s = r.Collect();
  const FamilySnapshot* f = FindFamily(s, name);
  if (f == nullptr || f->histograms.empty()) return -1;
  return static_cast<int64_t>(f->histograms[0].count);
}

}  // namespace metrics::store::testing_util
