#include "service/auth/caller_token_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/auth/testing/test_certificates.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using testing::TempDir;
using testing::WriteFileOrDie;

std::string Line(absl::string_view caller, absl::string_view token) {
  std::string hex;
  for (unsigned char byte : Sha256(token)) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return absl::StrCat(caller, " ", hex, "\n");
}

// A directory laid out as Kubernetes mounts a Secret: `tokens` -> `..data/tokens`, `..data` ->
// a versioned directory, swapped atomically by Publish().
class SecretVolume {
 public:
  explicit SecretVolume(const TempDir& dir) : dir_(dir) {}

  void Publish(const std::string& contents) {
    const std::string version = dir_.File(absl::StrCat("..v", ++version_));
    ASSERT_EQ(mkdir(version.c_str(), 0700), 0);
    WriteFileOrDie(version + "/tokens", contents);
    const std::string tmp = dir_.File("..data_tmp");
    ASSERT_EQ(symlink(version.c_str(), tmp.c_str()), 0);
    ASSERT_EQ(rename(tmp.c_str(), dir_.File("..data").c_str()), 0);
    if (version_ == 1) {
      ASSERT_EQ(symlink("..data/tokens", path().c_str()), 0);
    }
  }

  std::string path() const { return dir_.File("tokens"); }

 private:
  const TempDir& dir_;
  int version_ = 0;
};

// Records what the store reports.
struct Reports {
  std::mutex mu;
  std::vector<CallerTokenStore::Reload> reloads;

  std::function<void(const CallerTokenStore::Reload&)> Callback() {
    return [this](const CallerTokenStore::Reload& reload) {
      std::lock_guard<std::mutex> lock(mu);
      reloads.push_back(reload);
    };
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return reloads.size();
  }
  CallerTokenStore::Reload last() {
    std::lock_guard<std::mutex> lock(mu);
    return reloads.back();
  }
};

// A store whose own thread never runs during the test (the test calls ReloadNow).
std::unique_ptr<CallerTokenStore> StartStore(const std::string& path, Reports& reports) {
  CallerTokenStore::Options options;
  options.path = path;
  options.reload_interval = absl::Hours(1);
  options.on_reload = reports.Callback();
  absl::StatusOr<std::unique_ptr<CallerTokenStore>> store = CallerTokenStore::Start(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

bool Accepts(const CallerTokenStore& store, absl::string_view token, absl::string_view caller) {
  const std::string* name = store.Snapshot()->Match(token);
  return name != nullptr && *name == caller;
}

TEST(CallerTokenStoreTest, StartRefusesAMissingOrBadFile) {
  TempDir dir;
  CallerTokenStore::Options options;
  options.path = dir.File("absent");
  absl::StatusOr<std::unique_ptr<CallerTokenStore>> store = CallerTokenStore::Start(options);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("cannot open '" + options.path + "'"));

  options.path = dir.File("bad");
  WriteFileOrDie(options.path, absl::StrCat(Line("billing", "a"), "gdpr\n"));
  store = CallerTokenStore::Start(options);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(options.path + " line 2: expected two fields"));

  options.path = dir.File("large");
  WriteFileOrDie(options.path, std::string(CallerTokenStore::kMaxFileBytes + 1, '#'));
  store = CallerTokenStore::Start(options);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("is larger than"));
}

TEST(CallerTokenStoreTest, ASwappedSecretReplacesTheTokens) {
  TempDir dir;
  SecretVolume volume(dir);
  volume.Publish(Line("billing", "old-token"));
  Reports reports;
  std::unique_ptr<CallerTokenStore> store = StartStore(volume.path(), reports);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(Accepts(*store, "old-token", "billing"));
  std::shared_ptr<const CallerTokens> before = store->Snapshot();

  volume.Publish(absl::StrCat(Line("billing", "new-token"), Line("gdpr-service", "gdpr-token")));
  ASSERT_TRUE(store->ReloadNow().ok());
  EXPECT_TRUE(Accepts(*store, "new-token", "billing"));
  EXPECT_TRUE(Accepts(*store, "gdpr-token", "gdpr-service"));
  EXPECT_EQ(store->Snapshot()->Match("old-token"), nullptr);
  // A call that took the previous snapshot finishes with it.
  EXPECT_NE(before->Match("old-token"), nullptr);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports.last().status.ok());
  EXPECT_EQ(reports.last().tokens, 2u);
  EXPECT_EQ(reports.last().callers, 2u);

  // Unchanged contents: nothing to report.
  ASSERT_TRUE(store->ReloadNow().ok());
  EXPECT_EQ(reports.size(), 1u);
}

TEST(CallerTokenStoreTest, AnEditInPlaceIsPickedUp) {
  TempDir dir;
  const std::string path = dir.File("tokens");
  WriteFileOrDie(path, Line("billing", "one"));
  Reports reports;
  std::unique_ptr<CallerTokenStore> store = StartStore(path, reports);
  ASSERT_NE(store, nullptr);
  // Same size, same name: only the contents differ.
  WriteFileOrDie(path, Line("billing", "two"));
  ASSERT_TRUE(store->ReloadNow().ok());
  EXPECT_TRUE(Accepts(*store, "two", "billing"));
  EXPECT_FALSE(Accepts(*store, "one", "billing"));
}

TEST(CallerTokenStoreTest, ABrokenFileKeepsThePreviousTokensAndIsReportedOnce) {
  TempDir dir;
  SecretVolume volume(dir);
  volume.Publish(Line("billing", "good"));
  Reports reports;
  std::unique_ptr<CallerTokenStore> store = StartStore(volume.path(), reports);
  ASSERT_NE(store, nullptr);

  volume.Publish("billing not-a-digest\n");
  absl::Status status = store->ReloadNow();
  EXPECT_THAT(status.message(), HasSubstr("line 1"));
  EXPECT_THAT(status.message(), HasSubstr("the previous tokens stay in force"));
  EXPECT_TRUE(Accepts(*store, "good", "billing"));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_FALSE(reports.last().status.ok());
  EXPECT_EQ(reports.last().tokens, 1u);

  // The same failure again is not reported again.
  EXPECT_FALSE(store->ReloadNow().ok());
  EXPECT_EQ(reports.size(), 1u);

  // The file disappearing is another failure; the tokens still stand.
  ASSERT_EQ(unlink(volume.path().c_str()), 0);
  status = store->ReloadNow();
  EXPECT_THAT(status.message(), HasSubstr("cannot open"));
  EXPECT_EQ(reports.size(), 2u);
  EXPECT_TRUE(Accepts(*store, "good", "billing"));

  ASSERT_EQ(symlink("..data/tokens", volume.path().c_str()), 0);
  volume.Publish(Line("billing", "fixed"));
  ASSERT_TRUE(store->ReloadNow().ok());
  EXPECT_TRUE(Accepts(*store, "fixed", "billing"));
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_TRUE(reports.last().status.ok());
}

TEST(CallerTokenStoreTest, ItsOwnThreadReloads) {
  TempDir dir;
  const std::string path = dir.File("tokens");
  WriteFileOrDie(path, Line("billing", "one"));
  std::promise<void> reloaded;
  std::once_flag once;
  CallerTokenStore::Options options;
  options.path = path;
  options.reload_interval = absl::Milliseconds(5);
  options.on_reload = [&](const CallerTokenStore::Reload& reload) {
    if (reload.status.ok()) std::call_once(once, [&] { reloaded.set_value(); });
  };
  absl::StatusOr<std::unique_ptr<CallerTokenStore>> store = CallerTokenStore::Start(options);
  ASSERT_TRUE(store.ok()) << store.status();
  WriteFileOrDie(path + ".new", Line("billing", "two"));
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
  // Waits for the event, not for a time: the bound only keeps a broken build from hanging.
  ASSERT_EQ(reloaded.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_TRUE(Accepts(**store, "two", "billing"));
}

}  // namespace
}  // namespace userpilot::gateway
