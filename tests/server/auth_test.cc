// Bearer tokens from a file: parsing, checking, reloading.
#include "server/auth.h"

#include <gtest/gtest.h>

#include "tests/support/peers.h"

namespace eventstore {
namespace {

using metrics::test_support::TempDir;
using metrics::test_support::WriteFile;

TEST(TokenAuthTest, ChecksBearerTokensFromTheFile) {
  const std::string path = TempDir("auth") + "/tokens";
  WriteFile(path, "# ops team\n  s3cr3t-token_1  \n\nother.Token~+/=\n");
  auto auth = TokenAuth::FromFile(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 2u);
  EXPECT_TRUE((*auth)->Check("Bearer s3cr3t-token_1"));
  EXPECT_TRUE((*auth)->Check("bearer other.Token~+/="));
  EXPECT_TRUE((*auth)->Check("BEARER  s3cr3t-token_1 "));
  EXPECT_FALSE((*auth)->Check("Bearer s3cr3t-token_"));    // a prefix
  EXPECT_FALSE((*auth)->Check("Bearer s3cr3t-token_12"));  // longer
  EXPECT_FALSE((*auth)->Check("Bearer # ops team"));
  EXPECT_FALSE((*auth)->Check("Basic s3cr3t-token_1"));
  EXPECT_FALSE((*auth)->Check("s3cr3t-token_1"));
  EXPECT_FALSE((*auth)->Check("Bearer "));
  EXPECT_FALSE((*auth)->Check(""));
}

TEST(TokenAuthTest, RefusesFilesWithoutUsableTokens) {
  const std::string dir = TempDir("auth");
  WriteFile(dir + "/empty", "# nothing\n\n");
  EXPECT_FALSE(TokenAuth::FromFile(dir + "/empty").ok());
  WriteFile(dir + "/space", "two words\n");
  auto bad = TokenAuth::FromFile(dir + "/space");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 1"), absl::string_view::npos);
  EXPECT_FALSE(TokenAuth::FromFile(dir + "/missing").ok());
}

TEST(TokenAuthTest, ReloadSwapsTheSetAndKeepsItOnError) {
  const std::string path = TempDir("auth") + "/tokens";
  WriteFile(path, "old\n");
  auto auth = TokenAuth::FromFile(path);
  ASSERT_TRUE(auth.ok());
  WriteFile(path, "new\n");
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->Check("Bearer new"));
  EXPECT_FALSE((*auth)->Check("Bearer old"));
  WriteFile(path, "\n");  // emptied by mistake: the tokens in force stay
  EXPECT_FALSE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->Check("Bearer new"));
}

}  // namespace
}  // namespace eventstore
