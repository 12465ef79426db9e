// Bearer-token authentication from a token file: one token per line (blank lines and lines
// starting with '#' ignored, surrounding whitespace trimmed), reloadable while serving.
//
// Tokens are kept only as SHA-256 digests and a presented token is compared with every one of them
// by CRYPTO_memcmp, so the time taken says nothing about how much of a token matched, nor which.
//
// Thread contract: Check() from any number of threads; Reload() from any thread (SIGHUP's
// handler thread), concurrently with Check(): a check sees the old set or the new, whole.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace eventstore {

class TokenAuth {
 public:
  // Reads the file. InvalidArgument when it holds no token or a token with characters outside
  // RFC 6750's b64token set; the errno's status when it cannot be read.
  static absl::StatusOr<std::unique_ptr<TokenAuth>> FromFile(std::string path);

  // Reads the file again. On error the tokens in force stay, and the error is returned.
  absl::Status Reload();

  // True when `authorization` is "Bearer <token>" (scheme case-insensitive) for a token in force.
  bool Check(std::string_view authorization) const;

  size_t size() const;
  const std::string& path() const { return path_; }

 private:
  using Digest = std::array<uint8_t, 32>;
  using Digests = std::vector<Digest>;
  explicit TokenAuth(std::string path) : path_(std::move(path)) {}
  static absl::StatusOr<std::shared_ptr<const Digests>> Load(const std::string& path);

  const std::string path_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const Digests> digests_ ABSL_GUARDED_BY(mu_);
};

}  // namespace eventstore
