#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace eventstore {
namespace {

bool B64TokenChar(char c) {  // RFC 6750: ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" / "="
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || std::strchr("-._~+/=", c) != nullptr;
}

std::array<uint8_t, 32> Sha256(std::string_view s) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const TokenAuth::Digests>> TokenAuth::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot read token file ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto digests = std::make_shared<Digests>();
  int line_no = 0;
  const std::string all = text.str();
  for (absl::string_view line : absl::StrSplit(all, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    for (char c : line) {
      if (!B64TokenChar(c)) {
        return absl::InvalidArgumentError(
            absl::StrCat("token file ", path, " line ", line_no,
                         ": a token is made of letters, digits and -._~+/= only"));
      }
    }
    digests->push_back(Sha256(std::string_view(line.data(), line.size())));
  }
  if (digests->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token file ", path, " holds no token"));
  }
  return std::shared_ptr<const Digests>(std::move(digests));
}

absl::StatusOr<std::unique_ptr<TokenAuth>> TokenAuth::FromFile(std::string path) {
  std::unique_ptr<TokenAuth> auth(new TokenAuth(std::move(path)));
  if (absl::Status s = auth->Reload(); !s.ok()) return s;
  return auth;
}

absl::Status TokenAuth::Reload() {
  auto loaded = Load(path_);
  if (!loaded.ok()) return loaded.status();
  absl::MutexLock lock(&mu_);
  digests_ = *std::move(loaded);
  return absl::OkStatus();
}

size_t TokenAuth::size() const {
  absl::MutexLock lock(&mu_);
  return digests_ == nullptr ? 0 : digests_->size();
}

bool TokenAuth::Check(std::string_view header) const {
  const absl::string_view authorization(header.data(), header.size());
  constexpr absl::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  const absl::string_view token = absl::StripAsciiWhitespace(authorization.substr(kScheme.size()));
  const Digest presented = Sha256(std::string_view(token.data(), token.size()));
  std::shared_ptr<const Digests> digests;
  {
    absl::MutexLock lock(&mu_);
    digests = digests_;
  }
  // Every digest is compared, match or not: the time does not depend on which one matched.
  int matched = 0;
  for (const Digest& d : *digests) {
    matched |= CRYPTO_memcmp(d.data(), presented.data(), d.size()) == 0;
  }
  return matched != 0 && !token.empty();
}

}  // namespace eventstore
